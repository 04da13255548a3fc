"""TLS for `serve`: the configured certificate, or a self-signed one generated on first run and then reused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
from pathlib import Path

from .config import TLSConfig

log = logging.getLogger(__name__)


def ensure_certificate(tls: TLSConfig) -> tuple[Path, Path]:
    """Return (cert, key) PEM paths; generate a self-signed pair for localhost once if none is configured."""
    if tls.cert_file or tls.key_file:
        cert, key = Path(tls.cert_file or ""), Path(tls.key_file or "")
        for label, path in (("tls.cert_file", cert), ("tls.key_file", key)):
            if not path.is_file():
                raise FileNotFoundError(f"{label} {path} does not exist")
        return cert, key
    directory = Path(tls.self_signed_dir)
    cert, key = directory / "selfsigned.crt", directory / "selfsigned.key"
    if cert.is_file() and key.is_file():
        return cert, key
    directory.mkdir(parents=True, exist_ok=True)
    _write_self_signed(cert, key)
    log.info("generated a self-signed certificate in %s (browsers will ask you to accept it once)", directory)
    return cert, key


def _write_self_signed(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gaussian Avatar (self-signed)")])
    hosts = {"localhost", socket.gethostname()}
    alt_names = [x509.DNSName(h) for h in sorted(hosts)] + [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
