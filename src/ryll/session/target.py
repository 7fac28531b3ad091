"""Where to connect and with what secret: ``--direct``, ``--file`` (.vv), ``--url`` (a .vv
fetched over HTTP(S)), and the password sources.

The .vv format is virt-viewer's INI file with a ``[virt-viewer]`` section (virt-viewer's
``virt-viewer-file.c``). The password is never taken from the command line (it would show in
``ps``): it comes from the .vv file, ``--password-file`` or ``RYLL_PASSWORD``, and ``Target``'s
repr hides it so it cannot reach a log or report by accident.
"""

from __future__ import annotations

import configparser
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ryll.errors import ConnectError, UsageError

PASSWORD_ENV = "RYLL_PASSWORD"
# A .vv file is a few hundred bytes plus a CA certificate; 1 MiB is generous.
MAX_VV_BYTES = 1024 * 1024
URL_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Target:
    host: str
    port: int | None
    tls_port: int | None = None
    password: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    host_subject: str | None = None
    source: str = "direct"

    def describe(self) -> dict[str, object]:
        """What reports may say about the target (no password, no CA text)."""
        return {
            "host": self.host,
            "port": self.port,
            "tls_port": self.tls_port,
            "host_subject": self.host_subject,
            "ca": self.ca_pem is not None,
            "source": self.source,
        }

    def with_password(self, password: str | None) -> Target:
        return Target(
            self.host, self.port, self.tls_port, password, self.ca_pem, self.host_subject,
            self.source,
        )


def _port(text: str, what: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise UsageError(f"{what} {port} is outside 1..65535")
    return port


def parse_direct(text: str) -> Target:
    """``HOST:PORT`` or ``HOST:PORT:TLS_PORT`` (an IPv6 host goes in brackets: ``[::1]:5900``)."""
    host, rest = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"--direct {text!r}: unclosed '[' around an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        parts = rest.split(":")[1:] if rest.startswith(":") else []
    else:
        host, *parts = text.split(":")
    if not host or len(parts) not in (1, 2):
        raise UsageError(f"--direct {text!r}: expected HOST:PORT or HOST:PORT:TLS_PORT")
    port = _port(parts[0], "port")
    tls_port = _port(parts[1], "tls port") if len(parts) == 2 else None
    return Target(host, port, tls_port)


def parse_vv(text: str, source: str = "file") -> tuple[Target, bool]:
    """Parse .vv content; returns the target and whether ``delete-this-file`` was set."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise UsageError(f"not a valid .vv file: {exc.message}") from None
    if not parser.has_section("virt-viewer"):
        raise UsageError("not a valid .vv file: no [virt-viewer] section")
    vv = parser["virt-viewer"]
    kind = vv.get("type", "spice").strip().lower()
    if kind != "spice":
        raise UsageError(f".vv file is for a {kind!r} console; ryll speaks SPICE only")
    host = vv.get("host", "").strip()
    if not host:
        raise UsageError(".vv file has no host")
    port = vv.get("port", "").strip()
    tls_port = vv.get("tls-port", "").strip()
    # virt-viewer writes -1 or nothing for an absent port.
    port_n = _port(port, "port") if port not in ("", "-1", "0") else None
    tls_n = _port(tls_port, "tls-port") if tls_port not in ("", "-1", "0") else None
    if port_n is None and tls_n is None:
        raise UsageError(".vv file has neither port nor tls-port")
    ca = vv.get("ca")
    # virt-viewer stores the PEM with its newlines escaped as the two characters "\n".
    ca_pem = ca.replace("\\n", "\n").strip() + "\n" if ca and ca.strip() else None
    password = vv.get("password") or None
    delete = vv.get("delete-this-file", "0").strip().lower() in ("1", "true", "yes")
    subject = vv.get("host-subject", "").strip() or None
    return Target(host, port_n, tls_n, password, ca_pem, subject, source), delete


def load_vv_file(path: str | Path) -> Target:
    path = Path(path)
    try:
        data = path.read_bytes()[: MAX_VV_BYTES + 1]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_VV_BYTES:
        raise UsageError(f"{path} is larger than a .vv file can be ({MAX_VV_BYTES} bytes)")
    target, delete = parse_vv(data.decode("utf-8", "replace"), source="file")
    if delete:
        # virt-viewer's rule: the file holds a one-shot ticket; remove it once read.
        try:
            path.unlink()
        except OSError:
            pass
    return target


def load_vv_url(url: str) -> Target:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url {url!r}: only http:// and https:// URLs are fetched")
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as resp:  # noqa: S310
            data = resp.read(MAX_VV_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ConnectError(f"fetching {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectError(f"fetching {url} failed: {reason}") from None
    if len(data) > MAX_VV_BYTES:
        raise UsageError(f"{url} returned more than a .vv file can be ({MAX_VV_BYTES} bytes)")
    return parse_vv(data.decode("utf-8", "replace"), source="url")[0]


def resolve_password(target: Target, password_file: str | None) -> Target:
    """The .vv password wins if present; else ``--password-file``; else ``RYLL_PASSWORD``."""
    if target.password is not None:
        return target
    if password_file is not None:
        try:
            text = Path(password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read password file {password_file}: {exc.strerror}") from None
        # One trailing newline is an artefact of `echo pass > file`, not part of the secret.
        return target.with_password(text[:-1] if text.endswith("\n") else text)
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return target.with_password(env)
    return target
