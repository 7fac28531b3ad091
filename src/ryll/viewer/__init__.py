"""The browser viewer: ryll serves a page that shows the VM and takes its input."""
