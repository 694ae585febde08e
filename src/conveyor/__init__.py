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

from conveyor.app import Conveyor, EagerRunner, set_default_eager
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


def _testing_eager_runner() -> EagerRunner:
    # Imported on first use only: `import conveyor` does not load the test helpers.
    from conveyor.testing import inline_runner

    runner: EagerRunner = inline_runner()
    return runner


set_default_eager(_testing_eager_runner)

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
