"""What a harness checks beyond "no exception escaped": the rules of ryll's hostile-input
contract that do not show as an exception.

- Channel handlers never raise: they register gaps. A gap key with ``:internal:`` means a
  handler hit an unexpected exception (``Channel._dispatch`` contained it), which is a bug:
  ``check_gaps`` turns it into ``InternalGap`` with the traceback the channel logged.
- Everything else a harness calls may raise only ``RyllError`` subclasses (and the few
  documented local error types a harness names); a harness catches exactly those.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ryll.gaps import GapRegistry

REPO = Path(__file__).resolve().parents[1]
RYLL_SRC = str(REPO / "src" / "ryll") + os.sep


def innermost(stack: Sequence[traceback.FrameSummary]) -> str:
    """The innermost frame in ryll's sources (else the innermost of all), as file:line."""
    for fs in reversed(stack):
        if fs.filename.startswith(RYLL_SRC):
            return f"{os.path.relpath(fs.filename, REPO)}:{fs.lineno}"
    if stack:
        return f"{os.path.basename(stack[-1].filename)}:{stack[-1].lineno}"
    return "?"


class InternalGap(AssertionError):
    """A channel registered a ``:internal:`` gap: ryll met an unexpected exception.
    ``signature``: the gap key, the exception type and where ryll raised it."""

    def __init__(self, message: str, signature: str) -> None:
        super().__init__(message)
        self.signature = signature


class ContractViolation(AssertionError):
    """A result that breaks a documented promise (a decoded image of the wrong shape...)."""


class _Recorder(logging.Handler):
    """Keeps the tracebacks ryll logs with ``log.exception`` (the internal-gap path)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.tracebacks: list[tuple[str, str]] = []  # (text, exception type at file:line)

    def emit(self, record: logging.LogRecord) -> None:
        info = record.exc_info
        if info and info[1] is not None and len(self.tracebacks) < 8:
            where = innermost(traceback.extract_tb(info[2]))
            self.tracebacks.append(("".join(traceback.format_exception(*info)),
                                    f"{type(info[1]).__name__} at {where}"))


_RECORDER = _Recorder()


@contextmanager
def quiet_ryll_logs() -> Iterator[None]:
    """ryll's loggers at ERROR, to a recorder instead of the terminal (fast, and the fuzzer's
    output stays readable); restored afterwards."""
    logger = logging.getLogger("ryll")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    logger.handlers = [_RECORDER]
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers = saved[2]


def reset_log_record() -> None:
    _RECORDER.tracebacks.clear()


def check_gaps(gaps: GapRegistry) -> None:
    """Raise InternalGap if any ``:internal:`` gap was registered."""
    internal = [g for g in gaps.gaps() if ":internal:" in g.key]
    if not internal:
        return
    lines = [f"{g.key}: {g.detail}" for g in internal]
    signature = f"{internal[0].key}: {internal[0].detail.split(':', 1)[0]}"
    if _RECORDER.tracebacks:
        text, where = _RECORDER.tracebacks[0]
        signature = f"{internal[0].key}: {where}"
        lines.append("logged traceback:\n" + text.rstrip())
    raise InternalGap("\n".join(lines), signature)
