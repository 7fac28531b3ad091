"""The one exception hierarchy of ryll, and the exit code each failure maps to.

The CLI turns any ``RyllError`` into one line on stderr and ``exit_code``; a user who scripts
ryll can tell "wrong password" from "host unreachable" without parsing text.
"""

from __future__ import annotations


class RyllError(Exception):
    """Base of every error ryll raises on purpose."""

    exit_code = 1


class UsageError(RyllError):
    """Bad command line, unreadable .vv file, missing password file."""

    exit_code = 2


class ConnectError(RyllError):
    """The host could not be reached (DNS, refused, timeout)."""

    exit_code = 3



class TLSError(RyllError):
    """TLS handshake or certificate verification failed, or the host subject did not match."""

    exit_code = 5


class ProtocolError(RyllError):
    """The server sent something that breaks the wire format (overrun, bad magic, bad offset)."""

    exit_code = 6


class LinkError(RyllError):
    """The server answered the link with an error code (refused channel, version mismatch...)."""

    exit_code = 9

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class AuthError(LinkError):
    """SPICE_LINK_ERR_PERMISSION_DENIED: the ticket (password) is wrong or expired."""

    exit_code = 4


class ServerClosedError(RyllError):
    """The server closed or reset a channel connection while the session was running."""

    exit_code = 7


class DecodeError(RyllError):
    """An image or video payload could not be decoded. Never fatal to a session: the display
    channel turns it into the gap ``display:decode_failure:<codec>:<reason>``, so ``reason`` is
    a short stable word (``truncated``, ``missing_ref``, ``corrupt``...)."""

    exit_code = 8

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason


class SessionClosedError(RyllError):
    """The session ended (``close()``, ``stop()``, the duration) while something waited on it."""

    exit_code = 7


class PortError(RyllError):
    """A SPICE port that cannot be opened: the server offers no port of that name, or
    something already holds it."""

    exit_code = 11


class StoppedError(RyllError):
    """The session was stopped (SIGINT, SIGTERM, SIGHUP, ``--duration``, ``stop()``) before it
    had connected: there is nothing to show. A session stopped once connected ends with 0."""

    exit_code = 130


class WaitTimeout(RyllError, TimeoutError):
    """A wait of the Python API (or a front end built on it) ran out. A TimeoutError too, so
    ``except TimeoutError`` catches it; the subclasses say what did not happen."""

    exit_code = 10


class DisplayTimeout(WaitTimeout):
    """No display (of that index, or of that size) within the timeout."""


class IdleTimeout(WaitTimeout):
    """The screen kept changing: it never stayed still for the quiet period."""


class EventTimeout(WaitTimeout):
    """No event the predicate accepted arrived within the timeout."""


class ExpectTimeout(WaitTimeout):
    """The screen never matched the reference image. ``closest`` is the smallest
    per-channel difference seen (None if the region never had the reference's size) and
    ``last`` the last grab (a ``session.screens.Grab``) compared."""

    def __init__(self, message: str, closest: int | None, last: object) -> None:
        super().__init__(message)
        self.closest = closest
        self.last = last
