"""What the ``ryll`` command writes, and where: plain ``ryll:`` lines by default, timestamped
log records only with ``-v``, warnings and errors only with ``-q``, every record in
``--log-file``; and a stdout that may be closed under it (``ryll ... | head -1``) without
losing the run's results (the summary and screenshots are files; they are still written).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

VERBOSE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class PlainFormatter(logging.Formatter):
    """``ryll: message``; warnings and errors say which they are."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            text = f"ryll: error: {message}"
        elif record.levelno >= logging.WARNING:
            text = f"ryll: warning: {message}"
        else:
            text = f"ryll: {message}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (it may be replaced)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging(verbose: bool, quiet: bool, log_file: Path | None = None) -> None:
    """stderr: INFO as plain lines (default), DEBUG with timestamps (-v), WARNING+ (-q);
    ``log_file`` gets every record, timestamped, whatever stderr shows. Replaces the handlers
    an earlier call installed and no others."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "ryll", False):
            root.removeHandler(handler)
            handler.close()
    console = _Stderr()
    console.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter(VERBOSE_FORMAT) if verbose else PlainFormatter())
    console.ryll = True  # type: ignore[attr-defined]
    root.addHandler(console)
    root.setLevel(logging.DEBUG if verbose or log_file is not None else console.level)
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(VERBOSE_FORMAT))
        handler.ryll = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Libraries' debug chatter (asyncio, PIL) is not ryll's.
    for noisy in ("asyncio", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class ResilientStdout(io.TextIOBase):
    """Writes to ``inner`` until the reader goes away (EPIPE), then quietly to nothing: the
    session and its files carry on. ``quiet`` drops everything (``-q``)."""

    def __init__(self, inner: TextIO, quiet: bool = False) -> None:
        self.inner = inner
        self.quiet = quiet
        self.broken = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not (self.quiet or self.broken):
            try:
                self.inner.write(text)
            except OSError as exc:
                self._broke(exc)
        return len(text)

    def flush(self) -> None:
        if not (self.quiet or self.broken):
            try:
                self.inner.flush()
            except OSError as exc:
                self._broke(exc)

    def _broke(self, exc: OSError) -> None:
        if exc.errno not in (errno.EPIPE, errno.EINVAL, errno.EBADF):
            raise exc
        self.broken = True
        # The interpreter flushes stdout at exit; point the descriptor at /dev/null so that
        # flush cannot fail again ("Exception ignored ... BrokenPipeError").
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.inner.fileno())
            os.close(devnull)
