"""rediss:// against a TLS-only redis-server with a throwaway CA: the store runs with the
CA and a client certificate; a wrong CA and a host name the certificate does not list are
refused with one clear line; bad TLS options are refused before connecting."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from conveyor import Conveyor
from conveyor.backends import create_backend
from conveyor.errors import BackendUnavailable, ConfigError
from conveyor.job import Lease, Routing

if TYPE_CHECKING:
    from .tls_support import TlsServer


async def test_the_store_runs_over_tls_with_a_client_certificate(tls_server: TlsServer) -> None:
    app = Conveyor(tls_server.url())

    @app.task(name="tls.add")
    def add(a: int, b: int) -> int:
        return a + b

    try:
        # Given jobs enqueued over TLS from async and sync code
        first = await add.enqueue_async(1, 2)
        second = await asyncio.to_thread(add.enqueue, 3, 4)
        # When a worker's claim and completion go over TLS too
        backend = await app.open()
        jobs = await backend.claim("w1", Routing(), 10, 30.0)
        assert sorted(j.id for j in jobs) == sorted([first.id, second.id])
        for job in jobs:
            assert job.lease_token is not None
            assert await backend.complete(Lease(job.id, job.lease_token), b"7")
        # Then the store has them finished
        assert {(await backend.get(first.id)).state.value} == {"succeeded"}  # type: ignore[union-attr]
    finally:
        await app.aclose()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"], ids=["wrong_ca", "wrong_host"])
async def test_an_untrusted_certificate_is_refused_in_one_line(
    tls_server: TlsServer, host: str
) -> None:
    # The wrong CA, or the right CA with a name the certificate does not list
    url = tls_server.url(host, ca=tls_server.certs.other_ca if host == "localhost" else None)
    backend = create_backend(url)
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    await backend.close()
    message = str(caught.value)
    assert "presented a TLS certificate that was refused" in message
    assert "ssl_ca_certs" in message and "\n" not in message
    if host == "127.0.0.1":
        assert "127.0.0.1" in message and "mismatch" in message  # the hostname check is on


def test_tls_options_are_checked_before_connecting(tls_server: TlsServer) -> None:
    with pytest.raises(ConfigError, match=r"ssl_ca_certs=.*is not a readable file"):
        create_backend(f"rediss://localhost:{tls_server.port}/0?ssl_ca_certs=/no/such/ca.pem")
    with pytest.raises(ConfigError, match="needs TLS: use rediss://"):
        create_backend(f"redis://localhost:{tls_server.port}/0?ssl_ca_certs={tls_server.certs.ca}")
