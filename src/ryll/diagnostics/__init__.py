"""What ryll hands to a maintainer: pcap captures of the decrypted SPICE traffic (pcap.py), and
next the bug-report bundles and auto-snapshots built on them."""
