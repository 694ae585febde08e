"""One redaction for every URL and message Conveyor prints: no password ever shows."""

from __future__ import annotations

import pytest

from conveyor.redaction import is_secret_name, origin, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # A password holding '@' is hidden whole, not up to its first '@'.
        ("redis://:p@ss@w0rd@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:pw@host/0", "redis://user:***@host/0"),
        (
            "rediss://default:s3cr%40t@cache.example:6380/1",
            "rediss://default:***@cache.example:6380/1",
        ),
        ("postgresql://app:a:b:c@db/prod", "postgresql://app:***@db/prod"),
        ("redis://:@host/0", "redis://:***@host/0"),
        # A user name alone is no secret.
        ("postgresql://postgres@127.0.0.1:5432/app", "postgresql://postgres@127.0.0.1:5432/app"),
        # Nothing secret: unchanged.
        ("sqlite:///var/lib/conveyor.db", "sqlite:///var/lib/conveyor.db"),
        ("sqlite:///x@y.db", "sqlite:///x@y.db"),
        ("memory://", "memory://"),
        ("redis://localhost:6379/0?prefix=conveyor", "redis://localhost:6379/0?prefix=conveyor"),
    ],
)
def test_passwords_in_the_user_part(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://host/0?password=hunter2", "redis://host/0?password=***"),
        (
            "redis+sentinel://s1:26379/mymaster?sentinel_password=x1&db=2",
            "redis+sentinel://s1:26379/mymaster?sentinel_password=***&db=2",
        ),
        (
            "postgresql://db/app?sslmode=require&sslpassword=k3y&application_name=a@b",
            "postgresql://db/app?sslmode=require&sslpassword=***&application_name=a@b",
        ),
        (
            "https://h/?token=abc&Client_Secret=d&MyPassword=e",
            "https://h/?token=***&Client_Secret=***&MyPassword=***",
        ),
        ("redis://h/0?api_key=1;access_token=2", "redis://h/0?api_key=***;access_token=***"),
        ("redis://h/0#password=x", "redis://h/0#password=***"),
        ("redis://u:pw@h/0?password=pw", "redis://u:***@h/0?password=***"),
    ],
)
def test_secret_query_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pa/ss@host:6379/0",  # '/' in the password cuts the host short
        "redis://:pa?ss@host",  # '?' likewise
        "redis://user:12#ss@host",  # '#', and a "port" that parses
        "redis://user:12/ss@host",
        "redis://[::1:6379/0",  # unbalanced bracket: urlsplit refuses it
        "redis:/:pa55@host",  # one slash: no '://' at all
        "user:pa55@host:6379",
        ":pa55@host",
    ],
)
def test_unparseable_urls_never_echo_what_could_be_a_password(url: str) -> None:
    shown = redact_url(url)
    for secret in ("pa", "ss", "55", "12"):
        assert secret not in shown.replace("host", "").replace("6379", ""), shown
    assert "***" in shown or "@" not in url


def test_unparseable_urls_keep_the_host_when_it_is_plain() -> None:
    assert redact_url("redis://:pa/ss@cache.internal:6379") == "redis://***@cache.internal:6379"
    assert redact_url("redis:/:pw@host") == "***@host"
    assert redact_url("localhost:6379") == "localhost:6379"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "redis+sentinel://app:s3cr3t@h1:26379,h2:26380/mymaster/0?sentinel_password=x&a=1",
            "redis+sentinel://app:***@h1:26379,h2:26380/mymaster/0?sentinel_password=***&a=1",
        ),
        ("redis+cluster://h1:7000,h2:7001/", "redis+cluster://h1:7000,h2:7001/"),
        (
            "redis+cluster://:pa/ss@h1:7000,h2:7001/?x=1",
            "redis+cluster://:***@h1:7000,h2:7001/?x=1",
        ),
        ("redis+cluster://[::1]:7000,[::1]:7001", "redis+cluster://[::1]:7000,[::1]:7001"),
    ],
)
def test_host_lists_keep_their_hosts(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "sqs://eu-west-1?limits=redis://:hunter2@cache:6379/0&prefix=shop-",
        "sqs://eu-west-1?limits=redis%3A%2F%2F%3Ahunter2%40cache%3A6379%2F0",
        "sqs://eu-west-1?limits=postgresql://app:hunter2@db/jobs",
    ],
)
def test_a_url_given_as_an_option_is_redacted_too(url: str) -> None:
    shown = redact_url(url)
    assert "hunter2" not in shown and "***" in shown
    assert "cache" in shown or "db/jobs" in shown


def test_a_host_list_that_cannot_be_read_is_redacted_whole() -> None:
    assert redact_url("redis+sentinel://u:pa?ss@h1,h2/svc") == "redis+sentinel://***"


def test_redact_text_finds_urls_and_pairs_in_messages() -> None:
    message = (
        'cannot reach "redis://:p@ss@host:1/0" (also postgresql://u:pw@db/x?sslpassword=k); '
        "conninfo host=db password=hunter2 dbname=app token='a b'"
    )
    shown = redact_text(message)
    for secret in ("p@ss", ":pw@", "=k", "hunter2", "a b"):
        assert secret not in shown
    assert "redis://:***@host:1/0" in shown and "dbname=app" in shown and "host=db" in shown


def test_redact_is_idempotent() -> None:
    url = "redis://:p@ss@host/0?password=x"
    assert redact_url(redact_url(url)) == redact_url(url)
    assert redact_text(redact_text(url)) == redact_url(url)


def test_origin_keeps_scheme_and_host_only() -> None:
    hook = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    assert origin(hook) == "https://hooks.slack.com/***"
    assert origin("hooks.slack.com/services/T000/B000/XXXXSECRET") == "hooks.slack.com/***"
    assert origin("u:pw@hooks.slack.com/services/T000") == "***"
    assert origin("http://u:pw@127.0.0.1:8080/hook/SECRET") == "http://127.0.0.1:8080/***"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("sentinel_password", True),
        ("sslpassword", True),
        ("token", True),
        ("secret", True),
        ("X-Api-Key".replace("-", "_"), True),
        ("db", False),
        ("prefix", False),
        ("sslmode", False),
        ("application_name", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
