"""Rendering: surfaces (numpy), pixel operations, the image cache. Pure functions and plain
objects; the display channel drives them."""
