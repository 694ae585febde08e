"""A throwaway certificate authority and a redis-server that speaks only TLS.

Certificates are made with the ``cryptography`` package (EC keys, valid for a day): a CA,
a server certificate for ``localhost`` only (so connecting to 127.0.0.1 fails the hostname
check), a client certificate, a second, unrelated CA for the wrong-CA test, and a ``node``
certificate for ``localhost`` and ``127.0.0.1`` that the servers and sentinels of the TLS
Sentinel group use both to serve and to reach each other (sentinels name servers by IP).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from redis import Redis
from tests.integration.redis_server import free_port, redis_server_binary


@dataclass(frozen=True)
class Certificates:
    """Paths of the PEM files."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    node_cert: Path
    node_key: Path


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: str,
    issuer: _Issuer | None,
    key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.name if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    # Key identifiers, which strict verification (Python 3.13's default) asks for.
    signer = issuer.key if issuer else key
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def _ca(directory: Path, name: str) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    ca = [(x509.BasicConstraints(ca=True, path_length=None), True)]
    _write(directory, name, _certificate(f"Conveyor test {name}", None, key, ca), key)
    return _Issuer(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Conveyor test {name}")]), key
    )


def _leaf(
    directory: Path, name: str, issuer: _Issuer, extensions: list[tuple[x509.ExtensionType, bool]]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _write(directory, name, _certificate(name, issuer, key, extensions), key)


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for localhost, a client certificate and another CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca")
    _ca(directory, "other-ca")
    _leaf(
        directory, "server", ca, [(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)]
    )
    client_use = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    _leaf(directory, "client", ca, [(client_use, False)])
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    _leaf(directory, "node", ca, [(x509.SubjectAlternativeName(names), False)])
    d = directory
    return Certificates(
        d / "ca.pem", d / "other-ca.pem", d / "server.pem", d / "server.key",
        d / "client.pem", d / "client.key", d / "node.pem", d / "node.key",
    )  # fmt: skip


class TlsServer:
    """A redis-server listening on a TLS port only, asking clients for certificates."""

    def __init__(
        self,
        directory: Path,
        certs: Certificates,
        *args: str,
        node: bool = False,
        conf: Path | None = None,
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.certs = certs
        self.port = free_port()
        #: Extra redis-server arguments (``--replicaof``, ``--sentinel``...).
        self.args = list(args)
        #: Serve the ``node`` certificate (localhost and 127.0.0.1) instead of ``server``.
        self.node = node
        #: A configuration file to start from (a sentinel's, which it rewrites).
        self.conf = conf
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, host: str = "localhost", ca: Path | None = None) -> str:
        """``rediss://HOST:PORT/0`` with the CA (the right one unless ``ca``) and the
        client certificate."""
        c = self.certs
        return (
            f"rediss://{host}:{self.port}/0?ssl_ca_certs={ca or c.ca}"
            f"&ssl_certfile={c.client_cert}&ssl_keyfile={c.client_key}"
        )

    def client(self) -> Redis:
        """A TLS client of this server (or sentinel), for setting up and inspecting it."""
        c = self.certs
        return Redis(
            host="127.0.0.1" if self.node else "localhost", port=self.port, ssl=True,
            ssl_ca_certs=str(c.ca), ssl_certfile=str(c.client_cert),
            ssl_keyfile=str(c.client_key), socket_timeout=3, decode_responses=True,
        )  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until a TLS client gets an answer."""
        c = self.certs
        cert, key = (c.node_cert, c.node_key) if self.node else (c.server_cert, c.server_key)
        sentinel = "--sentinel" in self.args
        self.proc = subprocess.Popen(
            [
                redis_server_binary(), *([str(self.conf)] if self.conf else []),
                "--bind", "127.0.0.1", "--port", "0",
                "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                "--tls-key-file", str(key), "--tls-ca-cert-file", str(c.ca),
                "--tls-auth-clients", "yes", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"),
                *(() if sentinel else ("--save", "", "--appendonly", "yes")),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(Exception), self.client() as client:
                if client.ping():
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"TLS redis-server did not start on {self.port}:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server by its PID and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
