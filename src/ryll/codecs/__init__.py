"""Pure image decoders: bytes in, pixels out (compiled where hot)."""
