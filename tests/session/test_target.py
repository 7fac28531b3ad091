"""Targets: --direct, .vv files and URLs, password sources, and TLS host-subject matching."""

from __future__ import annotations

import datetime
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ryll.errors import ConnectError, TLSError, UsageError
from ryll.session.connection import check_subject, parse_subject
from ryll.session.target import (
    MAX_PASSWORD_FILE_BYTES,
    PASSWORD_ENV,
    Proxy,
    load_ca_file,
    load_vv_file,
    load_vv_url,
    parse_direct,
    parse_proxy,
    parse_secure_channels,
    parse_vv,
    resolve_password,
)

# A virt-viewer .vv file as libvirt / oVirt hand them out: the CA is one line with its newlines
# written as the two characters backslash and n (virt-viewer-file.c reads it that way).


def _self_signed_pem(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CA_LINES = _self_signed_pem("ryll-ca").strip().splitlines()
SUBJECT = "C=IL,L=Raanana,O=Red Hat\\, Inc.,CN=my server"
VV = (
    "[virt-viewer]\n"
    "type=spice\n"
    "host=192.0.2.10\n"
    "port=5900\n"
    "tls-port=5901\n"
    "password=s3cr#t;pw\n"
    "ca=" + "\\n".join(CA_LINES) + "\\n\n"
    f"host-subject={SUBJECT}\n"
    "delete-this-file=1\n"
    "fullscreen=0\n"
    "title=guest:%d\n"
    "\n[ovirt]\nhost=engine.example\n"
)


@pytest.fixture(autouse=True)
def _no_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


# --- --direct -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "tls"),
    [
        ("127.0.0.1:5900", "127.0.0.1", 5900, None),
        ("vm.example:5900:5901", "vm.example", 5900, 5901),
        ("[::1]:5900", "::1", 5900, None),
        ("[fe80::1]:1:65535", "fe80::1", 1, 65535),
        ("vm.example::5901", "vm.example", None, 5901),
        ("[::1]::5901", "::1", None, 5901),
    ],
)
def test_parse_direct(text: str, host: str, port: int, tls: int | None) -> None:
    t = parse_direct(text)
    assert (t.host, t.port, t.tls_port, t.password, t.source) == (host, port, tls, None, "direct")


@pytest.mark.parametrize(
    "text",
    [
        "", "host", "host:", ":5900", "host:port", "host:0", "host:65536", "host:-1",
        "host:5900:abc", "host:1:2:3", "::1:5900", "[::1", "[::1]", "[::1]5900", "[]:5900",
    ],
)
def test_parse_direct_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_direct(text)
    assert info.value.exit_code == 2


# --- .vv ----------------------------------------------------------------------------------


def test_parse_vv() -> None:
    t, delete = parse_vv(VV)
    assert delete is True
    assert (t.host, t.port, t.tls_port) == ("192.0.2.10", 5900, 5901)
    assert t.password == "s3cr#t;pw"
    assert t.host_subject == SUBJECT
    assert t.ca_pem == "\n".join(CA_LINES) + "\n"
    assert "\\n" not in t.ca_pem
    assert t.source == "file"


def test_parse_vv_tls_only_and_no_delete() -> None:
    text = "[virt-viewer]\ntype=spice\nhost=h\nport=-1\ntls-port=5901\n"
    t, delete = parse_vv(text, source="url")
    assert (t.port, t.tls_port, t.source, delete) == (None, 5901, "url", False)
    assert t.ca_pem is None and t.password is None and t.host_subject is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not an ini file", "not a valid .vv"),
        ("[other]\nhost=h\n", "no \\[virt-viewer\\]"),
        ("[virt-viewer]\ntype=vnc\nhost=h\nport=5900\n", "SPICE only"),
        ("[virt-viewer]\ntype=spice\nport=5900\n", "no host"),
        ("[virt-viewer]\ntype=spice\nhost=h\n", "neither port nor tls-port"),
        ("[virt-viewer]\ntype=spice\nhost=h\nport=99999\n", "outside"),
        ("[virt-viewer]\nhost=h\nport=1\nport=2\n", "not a valid .vv"),
    ],
)
def test_parse_vv_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse_vv(text)


def test_load_vv_file_deletes_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "console.vv"
    path.write_text(VV)
    t = load_vv_file(path)
    assert t.password == "s3cr#t;pw"
    assert not path.exists()


def test_load_vv_file_keeps_file_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "console.vv"
    path.write_text(VV.replace("delete-this-file=1", "delete-this-file=0"))
    assert load_vv_file(str(path)).host == "192.0.2.10"
    assert path.exists()


def test_load_vv_file_missing_or_too_big(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_vv_file(tmp_path / "nope.vv")
    big = tmp_path / "big.vv"
    big.write_bytes(b"[virt-viewer]\n" + b"#" * (1024 * 1024 + 10))
    with pytest.raises(UsageError, match="larger than"):
        load_vv_file(big)


# --- passwords ----------------------------------------------------------------------------


def test_password_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_text("from-file\n")
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    vv_target, _ = parse_vv(VV)
    # --password-file wins over the .vv file's password, as its help says.
    assert resolve_password(vv_target, str(pw_file)).password == "from-file"
    assert resolve_password(vv_target, None).password == "s3cr#t;pw"
    direct = parse_direct("h:5900")
    assert resolve_password(direct, str(pw_file)).password == "from-file"
    assert resolve_password(direct, None).password == "from-env"
    monkeypatch.delenv(PASSWORD_ENV)
    assert resolve_password(direct, None).password is None


def test_password_file_strips_one_trailing_newline(tmp_path: Path) -> None:
    direct = parse_direct("h:5900")
    for content, expected in [("pw\n", "pw"), ("pw", "pw"), ("pw\n\n", "pw\n"), (" pw ", " pw "),
                              ("pw\r\n", "pw")]:
        (tmp_path / "pw").write_bytes(content.encode())
        assert resolve_password(direct, str(tmp_path / "pw")).password == expected


def test_empty_env_password_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "")
    assert resolve_password(parse_direct("h:5900"), None).password == ""


def test_missing_password_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read password file"):
        resolve_password(parse_direct("h:5900"), str(tmp_path / "absent"))


def test_target_repr_never_shows_the_password() -> None:
    t, _ = parse_vv(VV)
    for text in (repr(t), str(t), repr(t.with_password("hunter2-pw")), str(t.describe())):
        assert "s3cr#t" not in text
        assert "hunter2" not in text
        assert "BEGIN CERTIFICATE" not in text
    assert "192.0.2.10" in repr(t)
    assert t.describe()["ca"] is True


def test_with_password_keeps_everything_else() -> None:
    t, _ = parse_vv(VV)
    u = t.with_password("other")
    assert u.password == "other"
    assert (u.host, u.port, u.tls_port, u.ca_pem, u.host_subject, u.source) == (
        t.host, t.port, t.tls_port, t.ca_pem, t.host_subject, t.source
    )


# --- --url --------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/console.vv":
            data = VV.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-virt-viewer")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_error(404, "Not Found")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@pytest.fixture
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_load_vv_url(http_base: str) -> None:
    t = load_vv_url(http_base + "/console.vv")
    assert (t.host, t.port, t.tls_port, t.source) == ("192.0.2.10", 5900, 5901, "url")
    assert t.password == "s3cr#t;pw"


def test_load_vv_url_404_is_connect_error(http_base: str) -> None:
    with pytest.raises(ConnectError, match="HTTP 404") as info:
        load_vv_url(http_base + "/missing.vv")
    assert info.value.exit_code == 3


def test_load_vv_url_unreachable() -> None:
    # Port 9 (discard) on the loopback: nothing listens in a test environment.
    with pytest.raises(ConnectError, match="fetching"):
        load_vv_url("http://127.0.0.1:9/console.vv")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://h/x.vv", "console.vv"])
def test_load_vv_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(UsageError, match="only http"):
        load_vv_url(url)


# --- host-subject -------------------------------------------------------------------------


def test_parse_subject_with_escaped_commas() -> None:
    assert parse_subject(SUBJECT) == [
        ("C", "IL"), ("L", "Raanana"), ("O", "Red Hat, Inc."), ("CN", "my server"),
    ]


def test_parse_subject_normalises_keys_and_spaces() -> None:
    assert parse_subject(" cn = a\\\\b , o=x,") == [("CN", "a\\b"), ("O", "x")]


def test_parse_subject_rejects_garbage() -> None:
    with pytest.raises(TLSError, match="not KEY=VALUE"):
        parse_subject("CN=ok,garbage")


def _cert_der(names: list[tuple[x509.ObjectIdentifier, str]]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in names])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


class _FakeSSL:
    def __init__(self, der: bytes | None) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        return self.der


SERVER_NAMES = [
    (NameOID.COUNTRY_NAME, "IL"),
    (NameOID.LOCALITY_NAME, "Raanana"),
    (NameOID.ORGANIZATION_NAME, "Red Hat, Inc."),
    (NameOID.COMMON_NAME, "my server"),
]


def test_check_subject_matches_certificate() -> None:
    check_subject(_FakeSSL(_cert_der(SERVER_NAMES)), SUBJECT)  # type: ignore[arg-type]
    # Order does not matter, as in spice-gtk's comparison of the parsed names.
    check_subject(
        _FakeSSL(_cert_der(SERVER_NAMES)),  # type: ignore[arg-type]
        "CN=my server,O=Red Hat\\, Inc.,L=Raanana,C=IL",
    )


def test_check_subject_mismatch() -> None:
    der = _cert_der(SERVER_NAMES[:3] + [(NameOID.COMMON_NAME, "other server")])
    with pytest.raises(TLSError, match="does not match") as info:
        check_subject(_FakeSSL(der), SUBJECT)  # type: ignore[arg-type]
    assert info.value.exit_code == 5


def test_check_subject_without_certificate() -> None:
    with pytest.raises(TLSError, match="no certificate"):
        check_subject(_FakeSSL(None), SUBJECT)  # type: ignore[arg-type]
    with pytest.raises(TLSError, match="no certificate"):
        check_subject(None, SUBJECT)


def test_check_subject_with_email_address() -> None:
    # openssl req's default prompts add emailAddress to self-made server certificates.
    der = _cert_der(SERVER_NAMES + [(NameOID.EMAIL_ADDRESS, "admin@example.com")])
    check_subject(
        _FakeSSL(der),  # type: ignore[arg-type]
        SUBJECT + ",emailAddress=admin@example.com",
    )


# --- TLS-only --direct, proxy=, secure-channels=, ca, password files ----------------------


def test_tls_only_direct_uses_tls_for_every_channel() -> None:
    t = parse_direct("h::5901")
    assert t.port is None and t.tls_port == 5901
    assert t.uses_tls("main") and t.uses_tls("display")
    plain = parse_direct("h:5900:5901")
    assert not plain.uses_tls("main")


@pytest.mark.parametrize("text", ["h::", "h:::5901", "h::x"])
def test_tls_only_direct_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_direct(text)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("http://proxy.example:8080", Proxy("proxy.example", 8080)),
        ("proxy.example", Proxy("proxy.example", 3128)),
        ("http://u%40x:p%3Aw@[::1]:3129/", Proxy("::1", 3129, "u@x", "p:w")),
        ("http://user@p:1", Proxy("p", 1, "user", None)),
    ],
)
def test_parse_proxy(text: str, want: Proxy) -> None:
    got = parse_proxy(text)
    assert (got.host, got.port, got.user, got.password) == (
        want.host, want.port, want.user, want.password)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("socks5://p:1080", "only http://"),
        ("https://p:443", "only http://"),
        ("http://:8080", "no host"),
        ("http://p:99999", "not a proxy URL"),
        ("http://p:8080/path", "no path"),
    ],
)
def test_parse_proxy_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse_proxy(text)


def test_proxy_credentials_never_shown() -> None:
    text = VV.replace("fullscreen=0", "proxy=http://alice:pr0xy-pw@proxy.example:3128\n"
                      "secure-channels=main;inputs")
    t, _ = parse_vv(text)
    assert t.proxy is not None and t.proxy.password == "pr0xy-pw"
    for shown in (repr(t), str(t.describe()), t.proxy.describe(), repr(t.proxy)):
        assert "pr0xy-pw" not in shown and "alice" not in shown
    assert t.describe()["proxy"] == "http://proxy.example:3128"


def test_secure_channels() -> None:
    text = VV.replace("fullscreen=0", "secure-channels=main;Inputs;")
    t, _ = parse_vv(text)
    assert t.secure_channels == {"main", "inputs"}
    assert t.uses_tls("main") and t.uses_tls("inputs") and not t.uses_tls("display")
    every, _ = parse_vv(VV.replace("fullscreen=0", "secure-channels=all"))
    assert every.uses_tls("display") and every.uses_tls("cursor")
    assert parse_secure_channels("") == frozenset()
    with pytest.raises(UsageError, match="unknown channel 'bogus'"):
        parse_secure_channels("main;bogus")
    no_tls = "[virt-viewer]\ntype=spice\nhost=h\nport=5900\nsecure-channels=main\n"
    with pytest.raises(UsageError, match="no tls-port"):
        parse_vv(no_tls)


def test_vv_single_use_ticket_is_recorded() -> None:
    t, delete = parse_vv(VV)
    assert delete and t.single_use
    u, _ = parse_vv(VV.replace("delete-this-file=1", "delete-this-file=0"))
    assert not u.single_use


def test_vv_ca_that_is_not_pem_is_a_usage_error() -> None:
    bad = VV.replace("ca=-----BEGIN", "ca=garbage-----BEGIN").replace("MII", "!!!")
    with pytest.raises(UsageError, match="ca is not a PEM certificate") as info:
        parse_vv(bad)
    assert info.value.exit_code == 2


def test_ca_file(tmp_path: Path) -> None:
    pem = _self_signed_pem("a") + _self_signed_pem("b")
    (tmp_path / "ca.pem").write_text(pem)
    assert load_ca_file(tmp_path / "ca.pem").count("BEGIN CERTIFICATE") == 2
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    with pytest.raises(UsageError, match="is not a PEM certificate"):
        load_ca_file(tmp_path / "bad.pem")
    with pytest.raises(UsageError, match="cannot read CA file"):
        load_ca_file(tmp_path / "absent.pem")


def test_password_file_checks(tmp_path: Path) -> None:
    direct = parse_direct("h:5900")
    latin = tmp_path / "latin1"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UsageError, match="not UTF-8"):
        resolve_password(direct, str(latin))
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (MAX_PASSWORD_FILE_BYTES + 1))
    with pytest.raises(UsageError, match="larger than"):
        resolve_password(direct, str(huge))
    with pytest.raises(UsageError, match="Is a directory|not a regular file"):
        resolve_password(direct, str(tmp_path))


def test_password_file_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo)
    # No writer ever opens it: a plain open() would block for ever.
    with pytest.raises(UsageError, match="not a regular file"):
        resolve_password(parse_direct("h:5900"), str(fifo))
