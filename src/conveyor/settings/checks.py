"""What makes a setting unusable, in words: one function per concern, ``None`` when fine.

`Settings` runs these as validators (`conveyor.settings`); the CLI and the log channels call
some of them directly (``--url``, a Slack webhook). Each message names the variable, the
value where it is safe to show (never a password or a webhook's secret path) and what is
accepted instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from conveyor.redaction import origin
from conveyor.settings.units import parse_duration

if TYPE_CHECKING:
    from conveyor.settings import Settings

# The logging channels `conveyor.logs` knows, by the names LOG_CHANNEL and LOG_STACK take.
LOG_CHANNELS: tuple[str, ...] = ("single", "daily", "stderr", "stack", "slack", "sentry", "null")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot name a backend (say, port 99999), or ``None`` when it can."""
    try:
        parts = urlsplit(url)
        if "," in parts.netloc:
            return None  # several hosts (PostgreSQL, Sentinel): the driver parses them
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, a broken [IPv6]
        if "port" not in str(exc).lower():
            return f"the backend URL cannot be parsed ({exc}); check its host part"
        port = -1
    if port is None or 1 <= port <= 65535:
        return None
    shown = parts.netloc.rpartition(":")[2]  # only the port: never the password
    if not shown.isdigit():
        # "redis://u:pa/ss@host": what reads as the port is the start of a password.
        return (
            "the backend URL's port is not a number: give 1 to 65535, e.g. "
            "redis://127.0.0.1:6379/0, and percent-encode any '/', '?' or '#' in the "
            "password (%2F, %3F, %23)"
        )
    return (
        f"the backend URL's port {shown!r} is not a port number: give 1 to 65535, "
        "e.g. redis://127.0.0.1:6379/0"
    )


def mode_problem(s: Settings) -> str | None:
    """Why ``WORKER_MODE`` cannot work with the other settings, or ``None`` when it can."""
    if s.worker_mode == "specialized" and not s.worker_priorities:
        return (
            "WORKER_MODE=specialized serves only WORKER_PRIORITIES, but WORKER_PRIORITIES is "
            "not set: set it (e.g. WORKER_PRIORITIES=high) or use WORKER_MODE=default"
        )
    if s.worker_mode == "job-specialized" and not s.worker_job_types:
        return (
            "WORKER_MODE=job-specialized serves only WORKER_JOB_TYPES, but WORKER_JOB_TYPES "
            "is not set: set it to task names (e.g. WORKER_JOB_TYPES=app.send_email) or use "
            "WORKER_MODE=default"
        )
    if s.worker_mode == "scheduler-only" and s.enable_scheduler is False:
        return (
            "WORKER_MODE=scheduler-only runs only the scheduler, but ENABLE_SCHEDULER=false "
            "turns it off: remove ENABLE_SCHEDULER or pick another WORKER_MODE"
        )
    return None


def retry_backoff_problem(s: Settings) -> str | None:
    """Why ``WORKER_BACKOFF_BASE`` and ``_MAX`` contradict each other, or ``None``."""
    return _first_over_cap(
        "WORKER_BACKOFF_BASE", s.worker_backoff_base, "WORKER_BACKOFF_MAX", s.worker_backoff_max
    )


def error_backoff_problem(s: Settings) -> str | None:
    """Why ``WORKER_ERROR_BACKOFF`` and ``_MAX`` contradict each other, or ``None``."""
    return _first_over_cap(
        "WORKER_ERROR_BACKOFF",
        s.worker_error_backoff,
        "WORKER_ERROR_BACKOFF_MAX",
        s.worker_error_backoff_max,
    )


def _first_over_cap(first_name: str, first: float, cap_name: str, cap: float) -> str | None:
    # A first wait longer than the longest would be cut to the longest without a word.
    if first <= cap:
        return None
    return (
        f"{first_name}={first:g} is above {cap_name}={cap:g}: the first wait cannot be "
        f"longer than the longest; raise {cap_name} or lower {first_name}"
    )


def log_problem(s: Settings) -> str | None:
    """Why the ``LOG_*`` channel settings cannot work, or ``None`` when they can."""
    known = ", ".join(LOG_CHANNELS)
    if s.log_channel not in LOG_CHANNELS:
        return f"LOG_CHANNEL={s.log_channel!r} is not a log channel: use one of {known}"
    for name in s.log_stack or ():
        if name not in LOG_CHANNELS or name == "stack":
            return (
                f"LOG_STACK names {name!r}, which is not a channel a stack can hold: use "
                f"channels among {known} (but not stack)"
            )
    used = set(s.log_stack or ()) if s.log_channel == "stack" else {s.log_channel}
    if s.log_channel == "stack" and not s.log_stack:
        return "LOG_CHANNEL=stack needs LOG_STACK, e.g. LOG_STACK=single,slack"
    if "slack" in used and s.log_slack_webhook_url is None:
        return "the slack log channel needs LOG_SLACK_WEBHOOK_URL (a Slack incoming webhook)"
    if "sentry" in used and s.sentry_dsn is None:
        return "the sentry log channel needs SENTRY_DSN (from your Sentry project's settings)"
    return None


def parse_thresholds(text: str) -> dict[str, float] | None:
    """``"mail=60, reports-*=10m"`` → ``{"mail": 60.0, "reports-*": 600.0}`` (empty: None)."""
    out: dict[str, float] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        queue, sep, seconds = item.partition("=")
        try:
            if not sep or not queue.strip():
                raise ValueError
            out[queue.strip()] = parse_duration(seconds)
        except ValueError:
            raise ValueError(
                f"{item!r} is not QUEUE=SECONDS: write e.g. mail=60,reports-*=10m"
            ) from None
    return out or None


def alert_problem(s: Settings) -> str | None:
    """Why the ``ALERT_*`` settings cannot work, or ``None`` when they can."""
    channel = s.alert_channel
    if channel is None:
        return None
    if channel not in LOG_CHANNELS:
        return (
            f"ALERT_CHANNEL={channel!r} is not a log channel: use one of {', '.join(LOG_CHANNELS)}"
        )
    used = set(s.log_stack or ()) if channel == "stack" else {channel}
    if channel == "stack" and not s.log_stack:
        return "ALERT_CHANNEL=stack needs LOG_STACK, e.g. LOG_STACK=single,slack"
    if "slack" in used and s.log_slack_webhook_url is None:
        return "ALERT_CHANNEL uses the slack channel, which needs LOG_SLACK_WEBHOOK_URL"
    if "sentry" in used and s.sentry_dsn is None:
        return "ALERT_CHANNEL uses the sentry channel, which needs SENTRY_DSN"
    return None


#: Hosts a plain http:// webhook may point at (a local test server).
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Slack webhook, or ``None``; never quotes the secret part."""
    shown = origin(url)
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return f"LOG_SLACK_WEBHOOK_URL ({shown}) is not a URL: paste the whole webhook URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in _LOOPBACK:
        return None
    return (
        f"LOG_SLACK_WEBHOOK_URL ({shown}) must be an https:// URL, like "
        "https://hooks.slack.com/services/T.../B.../...: copy it whole from the Slack "
        "app's Incoming Webhooks page (http:// is accepted only to 127.0.0.1 or localhost)"
    )
