"""Keyboard names, scancodes and text-to-keystroke conversion (no I/O)."""
