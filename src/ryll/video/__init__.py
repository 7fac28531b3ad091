"""Video stream decoders: frame bytes in, BGRA pixels out."""
