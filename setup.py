"""Compiled hot paths: every ``src/ryll/**/*.pyx`` becomes an extension module.

Cython with bounds checking on: the decoders read untrusted data, so an index error must be an
exception, never a read or write outside a buffer. ``wraparound`` is off because no hot loop
uses negative indices (a negative index still fails the bounds check). Metadata lives in
pyproject.toml; this file only declares the extensions.

``codecs/_lz_enc.pyx`` is the tests' and benchmarks' LZ/GLZ encoder, not part of the client: it
is built only for a development install (``RYLL_DEV=1``, which scripts/setup.sh sets), so the
runtime wheel does not ship it.
"""

import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

SRC = Path(__file__).parent / "src"
TEST_ONLY = {"_lz_enc.pyx"}

def extensions(dev: bool) -> list[Extension]:
    """One extension per ``.pyx``; the test-only ones only for a development install."""
    return [
        Extension(
            ".".join(pyx.relative_to(SRC).with_suffix("").parts),
            [str(pyx.relative_to(Path(__file__).parent))],
            include_dirs=[numpy.get_include()],
            extra_compile_args=["-O2"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for pyx in sorted(SRC.rglob("*.pyx"))
        if dev or pyx.name not in TEST_ONLY
    ]


if __name__ == "__main__":  # as setuptools runs it; tests import extensions() alone
    setup(
        ext_modules=cythonize(
            extensions(os.environ.get("RYLL_DEV") == "1"),
            compiler_directives={
                "language_level": 3,
                "boundscheck": True,
                "wraparound": False,
                "cdivision": True,
                "initializedcheck": True,
            },
        )
    )
