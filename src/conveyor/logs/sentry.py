"""The sentry channel: records (with their exceptions) become Sentry events.

sentry-sdk is the optional extra ``conveyor[sentry]`` and is imported only when this
channel is used. Its transport sends from its own background thread, so a slow or down
Sentry never blocks the caller.

The SDK belongs to the app when the app initialised it: its release, environment,
sampling and integrations stay as they are, and the channel only sends through it. When
Conveyor initialises it (``SENTRY_DSN`` and no active SDK), the SDK reads its own
``SENTRY_RELEASE`` and ``SENTRY_ENVIRONMENT``, and ``SENTRY_TRACES_SAMPLE_RATE`` turns
tracing on (a transaction per job, see `conveyor.middleware.sentry`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping

from conveyor.errors import ConfigError

TRACES_RATE_VARIABLE = "SENTRY_TRACES_SAMPLE_RATE"


def sentry_handler(dsn: str | None, *, traces_sample_rate: float | None = None) -> logging.Handler:
    """A handler that sends records to Sentry; the SDK is initialised only if nobody has.

    ``dsn`` and ``traces_sample_rate`` are used only when Conveyor initialises the SDK.
    """
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import EventHandler, LoggingIntegration
    except ImportError:
        raise ConfigError(
            "the sentry log channel needs sentry-sdk, which is not installed: "
            "pip install 'conveyor[sentry]'"
        ) from None
    if sentry_sdk.get_client().is_active():
        return EventHandler()  # the app's SDK: re-initialising would reset its options
    if dsn is None:
        raise ConfigError("the sentry log channel needs SENTRY_DSN (or sentry_sdk.init())")
    # The SDK's own logging hook would send every error record, whatever its channel;
    # routing is ours, so it is turned off and the channel's handler does the sending.
    # Release and environment are left to the SDK, which reads SENTRY_RELEASE and
    # SENTRY_ENVIRONMENT (and, for the release, the usual CI variables and git).
    sentry_sdk.init(
        dsn=dsn,
        traces_sample_rate=traces_sample_rate,
        integrations=[LoggingIntegration(level=None, event_level=None)],
        default_integrations=False,
    )
    return EventHandler()


def traces_sample_rate(environ: Mapping[str, str] = os.environ) -> float | None:
    """``SENTRY_TRACES_SAMPLE_RATE`` as a number from 0 to 1 (None when unset or empty).

    sentry-sdk reads ``SENTRY_RELEASE`` and ``SENTRY_ENVIRONMENT`` itself but not this
    one, so it is read here, beside them, with the same name other Sentry SDKs use.
    """
    raw = environ.get(TRACES_RATE_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        rate = float(raw)
    except ValueError:
        rate = math.nan
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(
            f"{TRACES_RATE_VARIABLE}={raw!r} is not a number from 0 to 1: set the share of "
            "jobs traced, e.g. 0.1, or unset it to trace nothing"
        )
    return rate
