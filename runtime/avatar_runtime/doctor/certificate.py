"""The HTTPS certificate: present, valid now and for a while, naming the host users open, matching its key, trusted.

Browsers need HTTPS for the microphone on any host but localhost, and they check the certificate's names
(subjectAltName: the common name is ignored), its dates and whether it chains to a CA they trust. The trust check
uses this machine's system CA store, which is what most Linux tools trust; browsers with their own store (Firefox,
Chrome's NSS database) may differ, which is why a self-signed or unknown issuer is a warning, not a failure.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError

from ..config import TLSConfig
from ..tls import ensure_certificate
from .result import Result
from .target import Target

GROUP = "tls"
EXPIRY_WARNING_DAYS = 30  # Let's Encrypt and cert-manager renew at 30 days left: less means renewal is not working
TRUSTED_CERT_FIX = (
    "use a certificate browsers trust: `mkcert -install && mkcert {host}` (a local CA for your own devices), "
    "then tls.cert_file / tls.key_file; on Kubernetes cert-manager or Let's Encrypt"
)


@dataclass(frozen=True)
class CertificateFiles:
    cert: Path
    key: Path
    origin: str  # configured | self-signed | preview (what `serve` would generate: nothing is on disk yet)


def locate(tls: TLSConfig, scratch: Path) -> CertificateFiles | Result:
    """The files `serve` would use; a missing configured file is a failure. Nothing is written outside `scratch`."""
    if tls.cert_file or tls.key_file:
        cert, key = Path(tls.cert_file or ""), Path(tls.key_file or "")
        for label, path in (("tls.cert_file", cert), ("tls.key_file", key)):
            if not path.is_file():
                shown = path if str(path) not in ("", ".") else "(not set)"
                fix = f"set {label} to the PEM file, or remove tls.cert_file and tls.key_file to use a self-signed one"
                return Result(GROUP, "certificate", "fail", f"{label} {shown} does not exist", fix)
        return CertificateFiles(cert, key, "configured")
    directory = Path(tls.self_signed_dir)
    cert, key = directory / "selfsigned.crt", directory / "selfsigned.key"
    if cert.is_file() and key.is_file():
        return CertificateFiles(cert, key, "self-signed")
    # Not generated yet: make the same certificate in a scratch directory, so its names and dates can be checked.
    cert, key = ensure_certificate(TLSConfig(self_signed_dir=str(scratch)))
    return CertificateFiles(cert, key, "preview")


def system_trust_roots() -> list[x509.Certificate]:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            try:
                with warnings.catch_warnings():  # a few old roots carry non-RFC 5280 serials; they still count
                    warnings.simplefilter("ignore")
                    return x509.load_pem_x509_certificates(Path(candidate).read_bytes())
            except ValueError:
                continue
    return []


def names_in(cert: x509.Certificate) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """(DNS names, IP addresses) of the subjectAltName extension; empty when there is none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)], san.get_values_for_type(x509.IPAddress)


def covers(cert: x509.Certificate, host: str) -> bool:
    """Whether a browser opening `host` accepts the certificate's names (a wildcard matches one label)."""
    dns, ips = names_in(cert)
    host = host.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(host) in ips
    except ValueError:
        pass
    first, _, rest = host.partition(".")
    return host in dns or (bool(rest) and f"*.{rest}" in dns and bool(first))


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # InvalidSignature, unsupported key types: not verifiably self-signed
        return False
    return True


def _validity(cert: x509.Certificate, now: dt.datetime, regenerate: str | None) -> Result:
    until, since = cert.not_valid_after_utc, cert.not_valid_before_utc
    renew = regenerate or "renew the certificate (cert-manager/certbot renew it automatically) and restart serve"
    if now >= until:
        return Result(GROUP, "validity", "fail", f"the certificate expired on {until:%Y-%m-%d}", renew)
    if now < since:
        finding = f"the certificate is not valid before {since:%Y-%m-%d %H:%M} UTC (is this machine's clock right?)"
        return Result(GROUP, "validity", "fail", finding, "fix the system clock (timedatectl) or reissue it")
    days = (until - now).days
    if days < EXPIRY_WARNING_DAYS:
        finding = f"the certificate expires in {days} days ({until:%Y-%m-%d})"
        return Result(GROUP, "validity", "warn", finding, renew)
    return Result(GROUP, "validity", "ok", f"valid until {until:%Y-%m-%d} ({days} days)")


def _hosts(cert: x509.Certificate, target: Target, origin: str) -> list[Result]:
    dns, ips = names_in(cert)
    listed = ", ".join([*dns, *map(str, ips)]) or "no subjectAltName (browsers ignore the common name)"
    results = []
    for host in target.public_hosts:
        if covers(cert, host):
            results.append(Result(GROUP, f"name {host}", "ok", f"the certificate names {host} ({listed})"))
            continue
        finding = f"browsers opening {target.url(host)} reject the certificate: it names {listed}, not {host}"
        fix = TRUSTED_CERT_FIX.format(host=host)
        if origin != "configured":
            fix = f"the generated certificate covers localhost and {socket.gethostname()}: open one of those, or {fix}"
        results.append(Result(GROUP, f"name {host}", "fail", finding, fix))
    return results


def _key_pair(cert: x509.Certificate, key_pem: bytes, key_path: Path) -> Result:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        fix = "decrypt it: openssl pkey -in KEY -out KEY.plain, then tls.key_file: KEY.plain (keep it mode 600)"
        return Result(GROUP, "key", "fail", f"{key_path} is encrypted: serve cannot prompt for a passphrase", fix)
    except ValueError as exc:
        return Result(GROUP, "key", "fail", f"{key_path} is not a PEM private key ({exc})", "set tls.key_file")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        fix = "set tls.key_file to the key the certificate was issued for"
        return Result(GROUP, "key", "fail", f"{key_path} is not the private key of this certificate", fix)
    return Result(GROUP, "key", "ok", f"{key_path} matches the certificate")


def _trust(chain: list[x509.Certificate], roots: list[x509.Certificate], target: Target, now: dt.datetime) -> Result:
    leaf = chain[0]
    host = next((h for h in target.public_hosts if covers(leaf, h)), None)
    fix = TRUSTED_CERT_FIX.format(host=host or target.public_hosts[0])
    if any(root == leaf for root in roots):
        return Result(GROUP, "trust", "ok", "the certificate itself is in this machine's trust store")
    if is_self_signed(leaf):
        url = target.url(host or target.public_hosts[0])
        finding = 'self-signed: every browser shows a warning once, and stays "not secure" until it is accepted'
        accept = f"open {url} and accept the warning (Advanced → Proceed), or {fix}"
        return Result(GROUP, "trust", "warn", finding, accept)
    subject = _verified_name(leaf, host)
    issuer = leaf.issuer.rfc4514_string()
    if subject is None or not roots:
        why = "it names no host" if subject is None else "this machine's CA store could not be read"
        return Result(GROUP, "trust", "info", f"issued by {issuer}; trust not checked: {why}")
    try:
        verifier = PolicyBuilder().store(Store(roots)).time(now).build_server_verifier(subject)
        verified = verifier.verify(leaf, chain[1:])
    except VerificationError as exc:
        finding = f"issued by {issuer}, which does not chain to a CA this machine trusts ({exc})"
        extra = "; if it is a public CA, put the intermediate certificates after yours in tls.cert_file"
        return Result(GROUP, "trust", "warn", finding, fix + extra)
    root = verified[-1].subject.rfc4514_string()
    return Result(GROUP, "trust", "ok", f"issued by {issuer}, trusted through {root}")


def _verified_name(leaf: x509.Certificate, host: str | None) -> DNSName | IPAddress | None:
    """The name to verify the chain for: the host users open, else the certificate's own first name."""
    if host is None:
        dns, ips = names_in(leaf)
        plain = [d for d in dns if not d.startswith("*.")]
        return DNSName(plain[0]) if plain else IPAddress(ips[0]) if ips else None
    try:
        return IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return DNSName(host)


def assess(
    files: CertificateFiles,
    target: Target,
    now: dt.datetime | None = None,
    roots: list[x509.Certificate] | None = None,
) -> list[Result]:
    """Every certificate finding for `files` (pure but for reading the two files)."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        chain = x509.load_pem_x509_certificates(files.cert.read_bytes())
    except ValueError as exc:
        finding = f"{files.cert} is not a PEM certificate ({exc})"
        return [Result(GROUP, "certificate", "fail", finding, "set tls.cert_file to a PEM certificate (chain)")]
    leaf = chain[0]
    regenerate = None
    if files.origin == "self-signed":
        regenerate = f"delete {files.cert} and {files.key}; the next serve generates a new one"
        shown = f"self-signed, generated by serve: {files.cert}"
    elif files.origin == "preview":
        shown = f"none yet in {target.config.tls.self_signed_dir}: serve generates a self-signed one on first start"
    else:
        shown = f"{files.cert} (subject {leaf.subject.rfc4514_string()})"
    results = [Result(GROUP, "certificate", "ok" if files.origin != "preview" else "info", shown)]
    results.append(_validity(leaf, now, regenerate))
    results.extend(_hosts(leaf, target, files.origin))
    if files.origin != "preview":
        results.append(_key_pair(leaf, files.key.read_bytes(), files.key))
    if target.trust_store is not None:
        roots = x509.load_pem_x509_certificates(target.trust_store.read_bytes())
    results.append(_trust(chain, system_trust_roots() if roots is None else roots, target, now))
    return results


def check(target: Target) -> list[Result]:
    if not target.tls_enabled:
        finding = "TLS is off (tls.enabled: false or --no-tls): plain HTTP; see the browser check for the microphone"
        return [Result(GROUP, "certificate", "info", finding)]
    with tempfile.TemporaryDirectory(prefix="avatar-doctor-") as scratch:
        files = locate(target.config.tls, Path(scratch))
        if isinstance(files, Result):
            return [files]
        return assess(files, target)
