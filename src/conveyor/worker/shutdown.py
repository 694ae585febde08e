"""Signals: the first SIGTERM or SIGINT stops gracefully, a second one stops now."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.worker.worker import Worker

log = logging.getLogger("conveyor.worker")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalHandlers:
    """Installs the worker's handlers on the running loop; `remove` puts the defaults back."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self.loop.add_signal_handler(sig, self._handle, sig)

    def _handle(self, sig: signal.Signals) -> None:
        if self.worker.stop_reason is None:
            log.info("received %s: finishing running jobs (send again to stop now)", sig.name)
            self.worker.stop(f"received {sig.name}")
        else:
            log.warning("received %s again: releasing running jobs and exiting now", sig.name)
            self.worker.force_stop()

    def remove(self) -> None:
        """Restore default signal handling."""
        for sig in SIGNALS:
            self.loop.remove_signal_handler(sig)
