"""``conveyor run --url``: the URL reaches every worker, but never its command line."""

from __future__ import annotations

import psutil
import pytest

from .harness import Cluster
from .supervised import Supervised

pytestmark = pytest.mark.slow


def test_url_goes_to_workers_by_environment_not_by_argv(cluster: Cluster) -> None:
    # Given a supervisor started with --url (the environment names another store)
    sup = Supervised(cluster, "single", "--url", cluster.url, env={"CONVEYOR_URL": "memory://"})
    try:
        # When its worker runs: it registered in the --url store, so the URL reached it
        [pid] = sup.wait_workers(1)
        worker = psutil.Process(pid)
        # Then `ps` (the command line) does not show the URL; the environment carries it
        assert cluster.url not in " ".join(worker.cmdline())
        assert "--url" not in worker.cmdline()
        assert worker.environ()["CONVEYOR_URL"] == cluster.url
    finally:
        sup.close()
