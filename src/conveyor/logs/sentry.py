"""The sentry channel: records (with their exceptions) become Sentry events.

sentry-sdk is the optional extra ``conveyor[sentry]`` and is imported only when this
channel is used. Its transport sends from its own background thread, so a slow or down
Sentry never blocks the caller.
"""

from __future__ import annotations

import logging

from conveyor.errors import ConfigError


def sentry_handler(dsn: str | None) -> logging.Handler:
    """A handler that sends records to Sentry, initialising the SDK with ``dsn`` if needed."""
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import EventHandler, LoggingIntegration
    except ImportError:
        raise ConfigError(
            "the sentry log channel needs sentry-sdk, which is not installed: "
            "pip install 'conveyor[sentry]'"
        ) from None
    if dsn is not None:
        # The SDK's own logging hook would send every error record, whatever its channel;
        # routing is ours, so it is turned off and the channel's handler does the sending.
        sentry_sdk.init(
            dsn=dsn,
            integrations=[LoggingIntegration(level=None, event_level=None)],
            default_integrations=False,
        )
    elif not sentry_sdk.is_initialized():
        raise ConfigError("the sentry log channel needs SENTRY_DSN (or sentry_sdk.init())")
    return EventHandler()
