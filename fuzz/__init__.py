"""In-repo fuzzing of ryll's parsers, decoders and channel handlers (see fuzz/README.md)."""
