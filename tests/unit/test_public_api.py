"""The public API is curated: `conveyor.__all__` is exact, sorted and documented."""

from __future__ import annotations

import inspect

import pytest

import conveyor
import conveyor.testing

EXPECTED = [
    "Attempt",
    "BackendError",
    "BackendUnavailable",
    "BoundTask",
    "ConfigError",
    "Conveyor",
    "ConveyorError",
    "DispatchResult",
    "EnqueueContext",
    "Event",
    "ExecutionContext",
    "Fail",
    "InvalidOption",
    "InvalidTransition",
    "JobContext",
    "JobFailed",
    "JobHandle",
    "JobNotFound",
    "JobProgress",
    "JobRecord",
    "JobSpec",
    "ListenersFailed",
    "PayloadTooLarge",
    "Priority",
    "RateLimited",
    "Retry",
    "SchemaVersionError",
    "SerializationError",
    "Settings",
    "State",
    "Task",
    "UnknownTask",
    "Worker",
    "__version__",
    "correlation_id",
    "current_job",
    "exponential",
    "fixed",
    "linear",
]


def test_all_is_exact_and_sorted() -> None:
    assert conveyor.__all__ == EXPECTED
    assert conveyor.__all__ == sorted(conveyor.__all__)
    assert len(set(conveyor.__all__)) == len(conveyor.__all__)


def test_every_public_name_exists_and_has_a_docstring() -> None:
    for name in conveyor.__all__:
        value = getattr(conveyor, name)
        if name == "__version__":
            assert isinstance(value, str) and value
            continue
        doc = inspect.getdoc(value)
        assert doc and doc.strip(), f"conveyor.{name} has no docstring"
        if inspect.isclass(value):
            # a class's own docstring, not one inherited from a base
            assert value.__doc__, f"conveyor.{name} has no docstring of its own"


def test_an_unknown_name_is_an_attribute_error() -> None:
    # The root loads a public name's module on first use; any other name is not there.
    with pytest.raises(AttributeError, match="NoSuchName"):
        _ = conveyor.NoSuchName
    assert "Worker" in dir(conveyor)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from conveyor import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(EXPECTED)


def test_the_testing_helpers_are_public_and_documented() -> None:
    assert conveyor.testing.__all__ == sorted(conveyor.testing.__all__)
    for name in conveyor.testing.__all__:
        assert inspect.getdoc(getattr(conveyor.testing, name)), f"testing.{name}"
