"""Where to connect and with what secret: ``--direct``, ``--file`` (.vv), ``--url`` (a .vv
fetched over HTTP(S)), and the password sources.

The .vv format is virt-viewer's INI file with a ``[virt-viewer]`` section (virt-viewer's
``virt-viewer-file.c``); ryll reads its connection keys: ``host``, ``port``, ``tls-port``,
``password``, ``ca``, ``host-subject``, ``proxy`` (an HTTP CONNECT proxy, spice-gtk's
``SpiceSession:proxy``), ``secure-channels`` (channels that must use TLS) and
``delete-this-file`` (a single-use ticket: the file is removed once read, and a reconnect could
only be refused). The password is never taken from the command line (it would show in ``ps``):
it comes from ``--password-file``, the .vv file or ``RYLL_PASSWORD``, in that order, and
``Target``'s repr hides it (and a proxy's credentials) so it cannot reach a log or report.
"""

from __future__ import annotations

import configparser
import os
import stat
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path

from ryll.errors import ConnectError, UsageError

PASSWORD_ENV = "RYLL_PASSWORD"
# A .vv file is a few hundred bytes plus a CA certificate; 1 MiB is generous.
MAX_VV_BYTES = 1024 * 1024
URL_TIMEOUT_S = 15.0
# A password file holds one short secret (SPICE's limit is 60 bytes); anything much bigger is
# the wrong file, and reading it whole would be unbounded.
MAX_PASSWORD_FILE_BYTES = 4096
# A CA bundle given with --ca-file: a few certificates.
MAX_CA_FILE_BYTES = 1024 * 1024
# Channel names secure-channels may list (spice-gtk's channel type names), and its "all".
SECURE_CHANNEL_NAMES = frozenset({
    "main", "display", "inputs", "cursor", "playback", "record", "tunnel", "smartcard",
    "usbredir", "port", "webdav", "all",
})


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy that ryll asks to CONNECT it to the server (virt-viewer's ``proxy=``,
    ``http://[user:password@]host[:port]``). Its credentials never reach a repr or report."""

    host: str
    port: int = 3128
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """The proxy as reports may name it: no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy(text: str) -> Proxy:
    """``http://[user:password@]host[:port]`` (default port 3128, spice-gtk's); no other scheme
    (spice-gtk's proxies are HTTP CONNECT proxies too)."""
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        url = urllib.parse.urlsplit(raw)
        port = url.port
    except ValueError as exc:
        raise UsageError(f"proxy: not a proxy URL ({exc})") from None
    if url.scheme.lower() != "http":
        raise UsageError(f"proxy: only http:// (HTTP CONNECT) proxies are supported, "
                         f"not {url.scheme}://")
    if not url.hostname:
        raise UsageError("proxy: no host in the proxy URL")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise UsageError("proxy: a proxy URL is http://[user:password@]host[:port], no path")
    user = urllib.parse.unquote(url.username) if url.username is not None else None
    password = urllib.parse.unquote(url.password) if url.password is not None else None
    return Proxy(url.hostname, port if port else 3128, user, password)


def parse_secure_channels(text: str) -> frozenset[str]:
    """virt-viewer's ``secure-channels``: channel names separated by ``;`` (or ``,``), or
    ``all``."""
    names = frozenset(n.strip().lower() for n in text.replace(",", ";").split(";") if n.strip())
    unknown = sorted(names - SECURE_CHANNEL_NAMES)
    if unknown:
        raise UsageError(f"secure-channels: unknown channel {unknown[0]!r} (of: "
                         f"{', '.join(sorted(SECURE_CHANNEL_NAMES))})")
    return names


def check_pem(text: str, what: str) -> str:
    """``text`` must hold at least one PEM certificate; returns it with a final newline."""
    from cryptography import x509  # 1.4 MiB: only when a certificate is given

    try:
        certs = x509.load_pem_x509_certificates(text.encode("utf-8", "replace"))
    except ValueError:
        certs = []
    if not certs:
        raise UsageError(f"{what} is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    return text.strip() + "\n"


@dataclass(frozen=True)
class Target:
    host: str
    port: int | None
    tls_port: int | None = None
    password: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    host_subject: str | None = None
    source: str = "direct"
    proxy: Proxy | None = None
    # Channel names (or "all") that must be linked over TLS (.vv secure-channels).
    secure_channels: frozenset[str] = frozenset()
    # The .vv file said delete-this-file: its ticket is single-use, so a reconnect is refused.
    single_use: bool = False

    def describe(self) -> dict[str, object]:
        """What reports may say about the target (no password, no CA text, no proxy
        credentials)."""
        return {
            "host": self.host,
            "port": self.port,
            "tls_port": self.tls_port,
            "host_subject": self.host_subject,
            "ca": self.ca_pem is not None,
            "source": self.source,
            "proxy": self.proxy.describe() if self.proxy is not None else None,
            "secure_channels": sorted(self.secure_channels),
            "single_use": self.single_use,
        }

    def with_password(self, password: str | None) -> Target:
        return replace(self, password=password)

    def uses_tls(self, channel: str) -> bool:
        """Whether ``channel`` (a channel type name) links over TLS: always with no plain
        port, and for the channels secure-channels names."""
        return self.port is None or bool(self.secure_channels & {channel, "all"})


def _port(text: str, what: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise UsageError(f"{what} {port} is outside 1..65535")
    return port


def parse_direct(text: str) -> Target:
    """``HOST:PORT``, ``HOST:PORT:TLS_PORT`` or TLS only ``HOST::TLS_PORT`` (an IPv6 host goes
    in brackets: ``[::1]:5900``)."""
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
    tls_port = _port(parts[1], "tls port") if len(parts) == 2 else None
    if parts[0] == "" and tls_port is not None:
        return Target(host, None, tls_port)
    return Target(host, _port(parts[0], "port"), tls_port)


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
    ca_pem = (check_pem(ca.replace("\\n", "\n"), "the .vv file's ca")
              if ca and ca.strip() else None)
    password = vv.get("password") or None
    delete = vv.get("delete-this-file", "0").strip().lower() in ("1", "true", "yes")
    subject = vv.get("host-subject", "").strip() or None
    proxy_text = vv.get("proxy", "").strip()
    proxy = parse_proxy(proxy_text) if proxy_text else None
    secure = parse_secure_channels(vv.get("secure-channels", ""))
    if secure and tls_n is None:
        raise UsageError(".vv file lists secure-channels but has no tls-port")
    return Target(host, port_n, tls_n, password, ca_pem, subject, source, proxy, secure,
                  delete), delete


def load_vv_file(path: str | Path) -> Target:
    path = Path(path)
    data = read_small_file(path, MAX_VV_BYTES, ".vv file")
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
    import urllib.error  # with http.client and email, 2 MiB: only for --url
    import urllib.request

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


def read_small_file(path: str | Path, limit: int, what: str) -> bytes:
    """A small regular file's bytes, checked first: not a FIFO or device (reading one could
    block for ever), not bigger than ``limit``."""
    try:
        with open(path, "rb", opener=_nonblocking) as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"{what} {path} is not a regular file")
            data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes")
    return data


def _nonblocking(path: str, flags: int) -> int:
    # O_NONBLOCK: opening a FIFO with no writer must not hang before fstat can refuse it.
    return os.open(path, flags | os.O_NONBLOCK)


def load_ca_file(path: str | Path) -> str:
    """--ca-file: a PEM file of one or more CA certificates."""
    data = read_small_file(path, MAX_CA_FILE_BYTES, "CA file")
    return check_pem(data.decode("utf-8", "replace"), f"CA file {path}")


def resolve_password(target: Target, password_file: str | None) -> Target:
    """``--password-file`` wins (as its help says); else the .vv password; else
    ``RYLL_PASSWORD``; else none."""
    if password_file is not None:
        data = read_small_file(password_file, MAX_PASSWORD_FILE_BYTES, "password file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"password file {password_file} is not UTF-8 text") from None
        # One trailing newline is an artefact of `echo pass > file`, not part of the secret.
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        return target.with_password(text)
    if target.password is not None:
        return target
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return target.with_password(env)
    return target
