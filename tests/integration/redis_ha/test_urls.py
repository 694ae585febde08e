"""Redis URLs as Conveyor reads them: Sentinel host lists, services and databases, our own
options, TLS files, and what is shown (no password, no secret option)."""

from __future__ import annotations

import pytest

from conveyor.backends.redis.urls import parse_url
from conveyor.errors import ConfigError


def test_a_sentinel_url_names_its_sentinels_service_and_database() -> None:
    target = parse_url(
        "redis+sentinel://app:s%40cret@10.0.0.1:26379,sentinel-b,[::1]:26380/orders/3"
        "?sentinel_password=sp&socket_timeout=2&prefix=billing"
    )
    assert target.kind == "sentinel"
    assert target.hosts == (("10.0.0.1", 26379), ("sentinel-b", 26379), ("::1", 26380))
    assert (target.service, target.prefix, target.sentinel_password) == ("orders", "billing", "sp")
    # redis-py gets the data servers' user, password, database and options, not ours
    assert target.redis_url == "redis://app:s%40cret@10.0.0.1:26379/3?socket_timeout=2"
    assert target.display == (
        "redis+sentinel://app:***@10.0.0.1:26379,sentinel-b,[::1]:26380/orders/3"
        "?sentinel_password=***&socket_timeout=2&prefix=billing"
    )
    assert "s%40cret" not in repr(target) and "sp'" not in repr(target)


def test_the_database_defaults_to_zero() -> None:
    assert parse_url("redis+sentinel://h:26379/mymaster").redis_url.endswith("/0")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:26379", "names no Sentinel service"),
        ("redis+sentinel://h:26379/svc/x", "database 'x'"),
        ("redis+sentinel://h:2637x/svc", "port '2637x' of h"),
        ("redis+sentinel://h:1,,h:2/svc", "an empty host"),
        ("redis://h/0?sentinel_password=x", "needs a Sentinel URL"),
        ("redis://h/0?wait_replicas=-1", "wait_replicas='-1'"),
        ("redis://h/0?wait_replicas=1&wait_timeout_ms=0", "wait_timeout_ms='0'"),
        ("redis://h/0?ssl_ca_certs=/etc/hostname", "needs TLS"),
        ("redis+sentinel://h/s?ssl_ca_certs=/etc/hostname", "use rediss+sentinel://"),
        ("rediss://h/0?ssl_certfile=/no/such.pem", "ssl_certfile='/no/such.pem'"),
        ("redis://h/0?prefix={x}", "invalid prefix"),
        ("redis://h/0?sockettimeout=2", "unknown option 'sockettimeout'"),
        ("redis+sentinel://h/s?wait_replica=1", "unknown option 'wait_replica'"),
        ("redis://h/0?ssl_check_hostname=false", "needs TLS: use rediss://"),
        ("redis+sentinel://h/s?ssl_cert_reqs=none", "needs TLS: use rediss+sentinel://"),
    ],
)
def test_bad_urls_are_refused_in_one_line(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url(url)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_url_never_shows_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url("redis+sentinel://u:hunter2@h:bad/svc")
    assert "hunter2" not in str(caught.value)


def test_wait_options() -> None:
    target = parse_url("redis://h/0?wait_replicas=2")
    assert (target.wait_replicas, target.wait_timeout_ms) == (2, 1000)
    assert "wait_replicas" not in target.redis_url


def test_a_tls_sentinel_url_gives_its_ssl_options_to_the_sentinels_and_the_servers() -> None:
    target = parse_url(
        "rediss+sentinel://s1:26379,s2/mymaster/0?ssl_ca_certs=/etc/hostname"
        "&ssl_check_hostname=false&socket_timeout=2"
    )
    assert (target.kind, target.tls, target.service) == ("sentinel", True, "mymaster")
    assert target.redis_url == (
        "rediss://s1:26379/0?ssl_ca_certs=%2Fetc%2Fhostname&ssl_check_hostname=false"
        "&socket_timeout=2"
    )
    assert target.ssl_options == (
        ("ssl_ca_certs", "/etc/hostname"),
        ("ssl_check_hostname", "false"),
    )
    with pytest.raises(ConfigError, match=r"ssl_keyfile='/no/key\.pem'"):
        parse_url("rediss+sentinel://s1/mymaster?ssl_keyfile=/no/key.pem")
    assert not parse_url("redis+sentinel://s1/mymaster").tls


def test_redis_py_options_pass_through() -> None:
    target = parse_url("redis://h/0?socket_timeout=2&max_connections=8&client_name=app")
    assert target.redis_url == "redis://h/0?socket_timeout=2&max_connections=8&client_name=app"
    assert parse_url("rediss://h/0?ssl_cert_reqs=none&ssl_check_hostname=false").tls
