"""The one exception of the test VM."""

from __future__ import annotations


class TestVMError(RuntimeError):
    """Building, starting, driving or stopping the test VM failed; the message says what to do."""

    __test__ = False  # not a pytest test class, despite the name
