"""A throwaway CA and server certificate for the test VM's TLS port.

``make_tls_dir(path)`` writes what QEMU's ``-spice x509-dir=`` wants (ca-cert.pem,
server-cert.pem, server-key.pem) and returns the server certificate's subject in the form
virt-viewer's ``host-subject`` uses: "C=XX,L=Testville,O=Ryll Test,CN=127.0.0.1". A test that
wants a mismatching subject changes one field (``subject_string(organization="Someone Else")``).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_COUNTRY = "XX"
DEFAULT_LOCALITY = "Testville"
DEFAULT_ORGANIZATION = "Ryll Test"
CA_COMMON_NAME = "Ryll Test CA"


def subject_string(
    common_name: str = "127.0.0.1",
    *,
    country: str = DEFAULT_COUNTRY,
    locality: str = DEFAULT_LOCALITY,
    organization: str = DEFAULT_ORGANIZATION,
) -> str:
    """A subject as virt-viewer's host-subject writes it: "C=..,L=..,O=..,CN=.." (commas in
    values escaped as "\\,")."""
    fields = (("C", country), ("L", locality), ("O", organization), ("CN", common_name))
    return ",".join(f"{k}={v.replace(',', chr(92) + ',')}" for k, v in fields)


def make_tls_dir(
    path: Path | str,
    hostname: str = "127.0.0.1",
    *,
    common_name: str | None = None,
    country: str = DEFAULT_COUNTRY,
    locality: str = DEFAULT_LOCALITY,
    organization: str = DEFAULT_ORGANIZATION,
    days: int = 3650,
) -> str:
    """Writes ca-cert.pem, server-cert.pem and server-key.pem into ``path`` (created if needed).

    The server certificate's subject is C, L, O, CN in that order (CN defaults to ``hostname``);
    its subjectAltName holds IP 127.0.0.1, DNS localhost and ``hostname``. Returns the subject
    string (see ``subject_string``).
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    cn = common_name if common_name is not None else hostname
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(days=1)
    not_after = now + datetime.timedelta(days=days)

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.LOCALITY_NAME, locality),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    alt: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    try:
        host_ip = ipaddress.ip_address(hostname)
        if x509.IPAddress(host_ip) not in alt:
            alt.append(x509.IPAddress(host_ip))
    except ValueError:
        if hostname != "localhost":
            alt.append(x509.DNSName(hostname))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    (out / "ca-cert.pem").write_bytes(ca_cert.public_bytes(pem))
    (out / "server-cert.pem").write_bytes(cert.public_bytes(pem))
    key_path = out / "server-key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return subject_string(cn, country=country, locality=locality, organization=organization)
