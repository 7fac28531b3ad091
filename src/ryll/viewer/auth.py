"""Who may use the viewer: whoever holds its one-time URL, and then the browser it was opened in.

The URL ryll prints carries a token; the first request with it gets a cookie (HttpOnly,
SameSite=Strict) and a redirect to the bare page, after which the token is spent: the URL in
the terminal, a shell history or a browser's history lets nobody else in. Every other request
needs the cookie. A WebSocket handshake also needs an Origin of the viewer itself, so another
site the browser has open cannot drive the VM with the browser's cookie. ``mint`` gives a new
one-time URL token (the control socket's and the API's way to open a second browser).
"""

from __future__ import annotations

import hmac
import secrets

COOKIE = "ryll_viewer"


class Access:
    def __init__(self) -> None:
        self._tokens: set[str] = set()
        self._cookies: set[str] = set()
        self.token = self.mint()

    def mint(self) -> str:
        """A new one-time token for the URL."""
        token = secrets.token_urlsafe(24)
        self._tokens.add(token)
        return token

    def exchange(self, token: str) -> str | None:
        """Spend a URL token: the cookie value for its browser, or None for an unknown or
        spent token."""
        for known in list(self._tokens):
            if hmac.compare_digest(known, token):
                self._tokens.discard(known)
                cookie = secrets.token_urlsafe(32)
                self._cookies.add(cookie)
                return cookie
        return None

    def admits(self, cookie: str | None) -> bool:
        if not cookie:
            return False
        return any(hmac.compare_digest(known, cookie) for known in self._cookies)
