"""The PKI of the dev cluster, generated in-process with ``cryptography``.

kube-apiserver needs a serving certificate, a client CA (the admin authenticates with a client
certificate in the ``system:masters`` group) and a key pair to sign service-account tokens.
Generating them here rather than with the openssl CLI keeps the recipe free of host tools and
identical on every machine. TLS keys are ECDSA P-256 (fast to generate on every start); the
service-account key is RSA, which every token consumer accepts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVING_DNS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
SERVING_IPS = ("127.0.0.1", "10.0.0.1")  # loopback, and the first IP of 10.0.0.0/24
VALIDITY = dt.timedelta(days=365)
SERVER = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH
PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class CertPaths:
    """Where each PEM file of the dev cluster's PKI lives."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    proxy_ca_cert: Path
    proxy_client_cert: Path
    proxy_client_key: Path

    @classmethod
    def in_dir(cls, certdir: Path) -> CertPaths:
        return cls(
            dir=certdir,
            ca_cert=certdir / "ca.crt",
            ca_key=certdir / "ca.key",
            serving_cert=certdir / "apiserver.crt",
            serving_key=certdir / "apiserver.key",
            admin_cert=certdir / "admin.crt",
            admin_key=certdir / "admin.key",
            sa_key=certdir / "sa.key",
            sa_pub=certdir / "sa.pub",
            proxy_ca_cert=certdir / "front-proxy-ca.crt",
            proxy_client_cert=certdir / "front-proxy-client.crt",
            proxy_client_key=certdir / "front-proxy-client.key",
        )


def write_certs(certdir: Path, extra_ips: tuple[str, ...] = ()) -> CertPaths:
    """Generate a fresh CA, serving and admin certs, SA key pair, front-proxy CA and client.

    ``extra_ips``: more addresses the API server is reached at (the local node's side of it)."""
    paths = CertPaths.in_dir(certdir)
    certdir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate small clock skew

    ca_cert, ca_key = _ca("oncall-dev-ca", now)
    _write_cert(paths.ca_cert, ca_cert)
    _write_key(paths.ca_key, ca_key)

    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in SERVING_DNS]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys((*SERVING_IPS, *extra_ips))]
    serving = _name("kube-apiserver")
    _leaf(paths.serving_cert, paths.serving_key, serving, (ca_cert, ca_key), now, SERVER, sans)
    admin = _name("admin", organization="system:masters")
    _leaf(paths.admin_cert, paths.admin_key, admin, (ca_cert, ca_key), now, CLIENT, [])

    # The aggregation layer's own CA, as kubeadm does: the apiserver publishes it, and
    # controller-manager/scheduler load it for delegated authentication.
    proxy_ca = _ca("oncall-dev-front-proxy-ca", now)
    _write_cert(paths.proxy_ca_cert, proxy_ca[0])
    proxy = _name(PROXY_CLIENT)
    _leaf(paths.proxy_client_cert, paths.proxy_client_key, proxy, proxy_ca, now, CLIENT, [])

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(paths.sa_key, sa_key)
    pub = sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    paths.sa_pub.write_bytes(pub)
    return paths


def _ca(name: str, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    cert = (
        _builder(subject, subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    cert_path: Path,
    key_path: Path,
    subject: x509.Name,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: dt.datetime,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_cert(cert_path, builder.sign(ca_key, hashes.SHA256()))
    _write_key(key_path, key)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when the file already existed with a wider mode
        os.write(fd, pem)
    finally:
        os.close(fd)
