"""The harnesses, by area: each module defines ``one_input`` functions and their seed
loaders, and ``TARGETS``, which fuzz.registry collects."""
