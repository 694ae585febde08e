"""Multi-channel logging on the standard `logging` module.

```python
from conveyor.logs import configure_logging, log, report

configure_logging()                      # LOG_CHANNEL, LOG_LEVEL, LOG_FORMAT, ...
log.info("charged", user=42)             # the default channel, context as fields
log.channel("slack").error("card declined", user=42)
log.stack("slack", "sentry").warning("retrying")
report(exc, "sentry", level="critical")  # with its traceback
```

Channels: ``single``, ``daily``, ``stderr``, ``stack``, ``slack``, ``sentry``, ``null``
(docs/logging.md). Other libraries' records reach the default channel too.

A process that runs the user's app (``conveyor worker``) calls `ensure_logging` instead:
it keeps the app's own logging set-up when there is one (docs/logging.md).
"""

from __future__ import annotations

from conveyor.logs.formatting import JsonFormatter, TextFormatter
from conveyor.logs.logger import Log, log, report
from conveyor.logs.ownership import LogSetup, ensure_logging
from conveyor.logs.state import configure_logging, reset_logging

__all__ = [
    "JsonFormatter",
    "Log",
    "LogSetup",
    "TextFormatter",
    "configure_logging",
    "ensure_logging",
    "log",
    "report",
    "reset_logging",
]
