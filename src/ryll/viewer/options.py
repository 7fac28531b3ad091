"""The viewer's options (``--web``, ``--web-host``...), checked before anything starts."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from ryll.errors import UsageError


@dataclass
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Open the page in the person's default browser once it is served.
    open_browser: bool = False
    # Ask the guest agent for the page's size as the monitor's resolution.
    resize_guest: bool = True


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The HTTPS context for --web-tls-cert/--web-tls-key, checked before anything starts."""
    for path, flag in ((cert, "--web-tls-cert"), (key, "--web-tls-key")):
        if not path.is_file():
            raise UsageError(f"{flag}: {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(f"--web-tls-cert/--web-tls-key: cannot use them: {exc}") from None
    return context
