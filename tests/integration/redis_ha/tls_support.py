"""A throwaway certificate authority and a redis-server that speaks only TLS.

Certificates are made with the ``openssl`` command (EC keys, valid for a day): a CA, a
server certificate for ``localhost`` only (so connecting to 127.0.0.1 fails the hostname
check), a client certificate, and a second, unrelated CA for the wrong-CA test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from tests.integration.redis_server import free_port, redis_server_binary


def openssl_binary() -> str:
    """The openssl path; skips (or fails under CI) when it is not installed."""
    path = shutil.which("openssl")
    if path:
        return path
    message = "openssl is not installed (apt-get install openssl)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Certificates:
    """Paths of the PEM files."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run([openssl_binary(), *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key(name: str, cwd: Path) -> None:
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name, cwd=cwd)


def _ca(name: str, cwd: Path) -> None:
    _key(f"{name}.key", cwd)
    _run(
        "req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem",
        "-days", "1", "-subj", f"/CN=Conveyor test {name}", cwd=cwd,
    )  # fmt: skip


def _signed(name: str, ca: str, extensions: str, cwd: Path) -> None:
    _key(f"{name}.key", cwd)
    _run("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
         cwd=cwd)  # fmt: skip
    (cwd / f"{name}.ext").write_text(extensions + "\n")
    _run(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext",
        cwd=cwd,
    )  # fmt: skip


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for localhost, a client certificate and another CA."""
    directory.mkdir(parents=True, exist_ok=True)
    _ca("ca", directory)
    _ca("other-ca", directory)
    _signed("server", "ca", "subjectAltName=DNS:localhost", directory)
    _signed("client", "ca", "extendedKeyUsage=clientAuth", directory)
    d = directory
    return Certificates(
        d / "ca.pem", d / "other-ca.pem", d / "server.pem", d / "server.key",
        d / "client.pem", d / "client.key",
    )  # fmt: skip


class TlsServer:
    """A redis-server listening on a TLS port only, asking clients for certificates."""

    def __init__(self, directory: Path, certs: Certificates) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.certs = certs
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, host: str = "localhost", ca: Path | None = None) -> str:
        """``rediss://HOST:PORT/0`` with the CA (the right one unless ``ca``) and the
        client certificate."""
        c = self.certs
        return (
            f"rediss://{host}:{self.port}/0?ssl_ca_certs={ca or c.ca}"
            f"&ssl_certfile={c.client_cert}&ssl_keyfile={c.client_key}"
        )

    def start(self) -> None:
        """Start the server and wait until a TLS client gets an answer."""
        c = self.certs
        self.proc = subprocess.Popen(
            [
                redis_server_binary(), "--bind", "127.0.0.1", "--port", "0",
                "--tls-port", str(self.port), "--tls-cert-file", str(c.server_cert),
                "--tls-key-file", str(c.server_key), "--tls-ca-cert-file", str(c.ca),
                "--tls-auth-clients", "yes", "--dir", str(self.dir), "--save", "",
                "--appendonly", "yes", "--logfile", str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(Exception), Redis.from_url(self.url()) as client:
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
