"""Conveyor: background jobs for Python.

```python
from conveyor import Conveyor

app = Conveyor()  # CONVEYOR_URL, default sqlite:///conveyor.db

@app.task(queue="mail", priority="high", retries=3, timeout=30)
async def send_email(to: str, subject: str) -> None: ...

send_email.enqueue("a@example.com", subject="Hi")
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor import composition

if TYPE_CHECKING:
    from conveyor.app import Conveyor, EagerRunner
    from conveyor.attempts import Attempt, JobProgress
    from conveyor.context import JobContext, current_job
    from conveyor.errors import (
        BackendError,
        BackendUnavailable,
        ConfigError,
        ConveyorError,
        Fail,
        InvalidOption,
        InvalidTransition,
        JobFailed,
        JobNotFound,
        ListenersFailed,
        PayloadTooLarge,
        RateLimited,
        Retry,
        SchemaVersionError,
        SerializationError,
        UnknownTask,
    )
    from conveyor.events import DispatchResult, Event
    from conveyor.handle import JobHandle
    from conveyor.job import JobRecord, Priority, State
    from conveyor.middleware import EnqueueContext, ExecutionContext, correlation_id
    from conveyor.retry import exponential, fixed, linear
    from conveyor.settings import Settings
    from conveyor.task import BoundTask, JobSpec, Task
    from conveyor.worker import Worker

#: Where each public name lives: ``import conveyor`` loads none of them, the first use of
#: one loads its module (``conveyor --help`` needs no app, settings or store code).
_WHERE = {
    "Conveyor": "conveyor.app",
    "EagerRunner": "conveyor.app",
    "set_default_eager": "conveyor.app",
    "Attempt": "conveyor.attempts",
    "JobProgress": "conveyor.attempts",
    "JobContext": "conveyor.context",
    "current_job": "conveyor.context",
    "BackendError": "conveyor.errors",
    "BackendUnavailable": "conveyor.errors",
    "ConfigError": "conveyor.errors",
    "ConveyorError": "conveyor.errors",
    "Fail": "conveyor.errors",
    "InvalidOption": "conveyor.errors",
    "InvalidTransition": "conveyor.errors",
    "JobFailed": "conveyor.errors",
    "JobNotFound": "conveyor.errors",
    "ListenersFailed": "conveyor.errors",
    "PayloadTooLarge": "conveyor.errors",
    "RateLimited": "conveyor.errors",
    "Retry": "conveyor.errors",
    "SchemaVersionError": "conveyor.errors",
    "SerializationError": "conveyor.errors",
    "UnknownTask": "conveyor.errors",
    "DispatchResult": "conveyor.events",
    "Event": "conveyor.events",
    "JobHandle": "conveyor.handle",
    "JobRecord": "conveyor.job",
    "Priority": "conveyor.job",
    "State": "conveyor.job",
    "EnqueueContext": "conveyor.middleware",
    "ExecutionContext": "conveyor.middleware",
    "correlation_id": "conveyor.middleware",
    "exponential": "conveyor.retry",
    "fixed": "conveyor.retry",
    "linear": "conveyor.retry",
    "Settings": "conveyor.settings",
    "BoundTask": "conveyor.task",
    "JobSpec": "conveyor.task",
    "Task": "conveyor.task",
    "Worker": "conveyor.worker",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


def _testing_eager_runner() -> EagerRunner:
    # Imported on first use only: `import conveyor` does not load the test helpers.
    from conveyor.testing import inline_runner

    runner: EagerRunner = inline_runner()
    return runner


composition.default_eager = _testing_eager_runner

__version__ = "0.1.0"

__all__ = [
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
