"""Stores plug in by URL scheme through the ``conveyor.backends`` entry-point group.

The example store (tests/plugin_store, its own distribution, installed by scripts/test.sh)
is used the way a third-party store would be: `Conveyor("example://")`, a real worker, the
CLI. It is a small store, the core protocol plus `Limits`, so it also shows what a store
without the other capabilities gets: a worker runs on it, and ``conveyor status`` refuses
it in one line. (Its own distribution runs the contract suite on it, by the capabilities
it declares: tests/plugin_store/test_contract.py.) The tests that need it skip locally when
it is not installed and fail when CI is set.

The lookup's own rules are checked with small distributions written to a temporary
directory on ``sys.path``: real package metadata, read by importlib.metadata.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from tests.contract.support import plugged_url
from typer.testing import CliRunner

from conveyor import Conveyor, State, Worker
from conveyor.backends import BUILTIN, GROUP, SCHEMES, create_backend, stores
from conveyor.backends.capabilities import Admin, Limits, Scheduling, Telemetry, Unsupported
from conveyor.backends.memory import MemoryBackend
from conveyor.cli import app as cli_app
from conveyor.errors import ConfigError


@pytest.fixture
def example_url() -> str:
    """``example://`` when the example store is installed (skips or fails otherwise)."""
    return plugged_url("example")


# -- the example store, installed as its own distribution ------------------------------------
def test_the_url_scheme_builds_the_plugged_store(example_url: str) -> None:
    # Given the example store's distribution is installed
    store = stores()["example"]
    assert (store.distribution, store.builtin) == ("conveyor-example-store", False)
    # When an app is pointed at its scheme
    app = Conveyor(example_url)
    # Then the app's backend is that store, and so is another handle on it
    backend = app.backend
    assert type(backend).__module__ == "conveyor_example_store"
    assert type(backend).__name__ == "ExampleBackend"
    assert isinstance(backend, MemoryBackend)
    assert type(backend.clone()) is type(backend)
    assert backend.url == "example://"


def test_the_example_store_is_small(example_url: str) -> None:
    from conveyor_example_store import ExampleBackend

    # Given the example store, which declares the core protocol plus Limits only
    backend = ExampleBackend(example_url)
    assert backend.capabilities == frozenset({"limits"})
    assert backend.supports(Limits) and isinstance(backend.limits, Limits)
    assert backend.clone().capabilities == frozenset({"limits"})
    # When something needs a capability it lacks, Then one line names the store and the lack
    for capability in (Admin, Scheduling, Telemetry):
        assert not backend.supports(capability)
        with pytest.raises(Unsupported) as info:
            backend.require(capability, purpose="the test")
        message = str(info.value)
        assert "\n" not in message
        assert f"example:// store {capability.lacking}" in message
    with pytest.raises(Unsupported, match="example:// store cannot list, count, repair"):
        _ = backend.admin


async def test_a_worker_runs_jobs_on_the_plugged_store(example_url: str) -> None:
    app = Conveyor(example_url)
    flaky_calls: list[int] = []

    @app.task(name="double", retries=0)
    async def double(n: int) -> int:
        return 2 * n

    @app.task(name="shout", retries=0)
    def shout(text: str) -> str:  # a sync task: runs in the worker's thread pool
        return text.upper()

    @app.task(name="flaky", retries=1, backoff=0)
    async def flaky() -> str:
        flaky_calls.append(1)
        if len(flaky_calls) == 1:
            raise RuntimeError("first attempt fails")
        return "second attempt"

    # Given jobs enqueued on the plugged store, one of them failing on its first attempt
    await app.open()
    doubles = [await double.enqueue_async(n) for n in range(5)]
    loud = await shout.enqueue_async("hello")
    retried = await flaky.enqueue_async()

    # When a real worker drains the store
    worker = Worker(app, burst=True, concurrency=2, reaper=False)
    assert await worker.run() == 0

    # Then every job ran to completion, the failed attempt retried, with results kept
    assert [await h.result_async(timeout=5) for h in doubles] == [0, 2, 4, 6, 8]
    assert await loud.result_async(timeout=5) == "HELLO"
    assert await retried.result_async(timeout=5) == "second attempt"
    info = await retried.info_async()
    assert (info.state, info.attempts) == (State.SUCCEEDED, 2)
    await app.aclose()


def test_conveyor_status_refuses_a_store_without_admin_in_one_line(example_url: str) -> None:
    # When `conveyor status` is pointed at a store that cannot list or count jobs
    shown = CliRunner().invoke(cli_app, ["status", "--url", example_url])
    # Then it stops with one line naming the store and what it lacks, not a traceback
    assert shown.exit_code != 0, shown.output
    assert "example:// store" in shown.output
    assert "cannot list, count, repair or pause jobs" in shown.output
    assert len(shown.output.strip().splitlines()) == 1, shown.output
    assert isinstance(shown.exception, SystemExit), shown.exception  # exited, did not crash
    assert "Traceback" not in shown.output


def test_an_unknown_scheme_lists_the_plugged_stores_too(example_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_backend("nosuch://host/db")
    message = str(info.value)
    assert "unknown backend scheme 'nosuch'" in message
    assert "example:// (conveyor-example-store)" in message
    assert all(f"{scheme}://" in message for scheme in SCHEMES)


# -- the lookup's rules, with distributions written for the test ------------------------------
Install = Callable[..., None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(dist, {scheme: target}, **modules)``: a distribution on ``sys.path``, with
    entry points in the ``conveyor.backends`` group and the modules they point at."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def add(dist: str, points: dict[str, str], **sources: str) -> None:
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = [f"[{GROUP}]", *(f"{name} = {target}" for name, target in points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in sources.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)
        stores.cache_clear()

    stores.cache_clear()
    yield add
    stores.cache_clear()
    for module in modules:
        sys.modules.pop(module, None)


FACTORY = """
    from conveyor.backends.memory import MemoryBackend

    def make(url, *, clock):
        return MemoryBackend(url, clock=clock)

    def not_a_backend(url, *, clock):
        return object()
"""


def test_a_factory_entry_point_builds_the_store(install: Install) -> None:
    install("acme-store", {"acme": "acme_factory:make"}, acme_factory=FACTORY)
    backend = create_backend("acme://jobs")
    assert isinstance(backend, MemoryBackend) and backend.url == "acme://jobs"
    assert stores()["acme"].distribution == "acme-store"


def test_a_plugged_store_that_fails_to_import_names_its_distribution(install: Install) -> None:
    # Given a store whose module needs a driver that is not installed
    broken = "import cloud_driver_that_is_not_installed\nclass Store: ...\n"
    install("cloudq", {"cloudq": "cloudq_store:Store"}, cloudq_store=broken)
    # When its scheme is used, Then one line names the distribution, the scheme and the error
    with pytest.raises(ConfigError) as info:
        create_backend("cloudq://region-1")
    message = str(info.value)
    assert "\n" not in message
    assert "'cloudq'" in message and "cloudq://" in message
    assert "ModuleNotFoundError" in message and "cloud_driver_that_is_not_installed" in message
    # and the other stores are not affected
    assert isinstance(create_backend("memory://"), MemoryBackend)


def test_an_entry_point_that_builds_no_backend_is_refused(install: Install) -> None:
    install("odd-store", {"odd": "odd_factory:not_a_backend"}, odd_factory=FACTORY)
    with pytest.raises(
        ConfigError,
        match=r"odd:// store of the distribution 'odd-store'.*"
        r"returned object, not a conveyor Backend",
    ):
        create_backend("odd://")


def test_a_plugged_store_cannot_take_a_built_in_scheme(install: Install) -> None:
    # Given a distribution that registers a store for redis://
    install("sneaky-store", {"redis": "sneaky_factory:make"}, sneaky_factory=FACTORY)
    # When redis:// is used, Then Conveyor refuses to guess and names the distribution
    with pytest.raises(ConfigError) as info:
        create_backend("redis://localhost:6379/0")
    message = str(info.value)
    assert "'sneaky-store'" in message and "redis://" in message
    assert "cannot replace a built-in" in message and "Uninstall sneaky-store" in message
    # and the built-in schemes it did not claim still work
    assert isinstance(create_backend("memory://"), MemoryBackend)


def test_two_distributions_cannot_share_a_scheme(install: Install) -> None:
    install("first-store", {"twin": "first_factory:make"}, first_factory=FACTORY)
    install("second-store", {"twin": "second_factory:make"}, second_factory=FACTORY)
    with pytest.raises(ConfigError) as info:
        create_backend("twin://")
    message = str(info.value)
    assert "'first-store'" in message and "'second-store'" in message and "twin://" in message


def test_the_built_in_stores_work_without_package_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given no entry points at all (a source tree on sys.path, never installed)
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: ())
    stores.cache_clear()
    try:
        # Then the built-in table still finds every built-in scheme
        assert sorted(stores()) == sorted(SCHEMES)
        assert isinstance(create_backend("memory://"), MemoryBackend)
    finally:
        stores.cache_clear()


def test_conveyor_registers_its_own_stores_by_entry_point() -> None:
    # The installed metadata and the built-in fallback table are the same table
    own = {
        point.name: point.value
        for point in entry_points(group=GROUP)
        if point.dist is not None and point.dist.name == "conveyor"
    }
    assert own == BUILTIN
    assert all(stores()[scheme].builtin for scheme in SCHEMES)


def test_the_entry_points_are_read_once() -> None:
    assert stores() is stores()


def test_every_built_in_target_is_a_backend_class() -> None:
    from importlib.metadata import EntryPoint

    from conveyor.backends.base import Backend

    for scheme, target in BUILTIN.items():
        loaded = EntryPoint(scheme, target, GROUP).load()
        assert isinstance(loaded, type) and issubclass(loaded, Backend), scheme


@pytest.mark.parametrize(
    ("url", "driver", "extra"),
    [("rediss://cache:6380/0", "redis", "redis"), ("postgres://db/jobs", "psycopg", "postgres")],
)
def test_a_missing_driver_names_the_extra_to_install(
    url: str, driver: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the driver cannot be imported (and the store's modules are not loaded yet)
    package = f"conveyor.backends.{extra}"
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, driver, None)
    # When its scheme is used, Then the error says which extra to install
    with pytest.raises(ConfigError, match=rf"pip install 'conveyor\[{extra}\]'"):
        create_backend(url)
