"""Helpers for testing your own tasks: eager mode, a memory backend, and `drain`.

```python
from conveyor.testing import FakeClock, drain, eager, use_memory_backend

def test_signup_sends_mail() -> None:
    with use_memory_backend(app), eager(app):
        job = send_email.enqueue("a@example.com", subject="Hi")  # ran already
        assert job.state() is State.SUCCEEDED

def test_the_whole_flow() -> None:
    with use_memory_backend(app, clock=FakeClock()):
        signup("a@example.com")                 # enqueues jobs as in production
        drain(app).raise_on_failure()           # a real worker runs them, retries included
```

Eager mode runs each job once, inline, through the same executor a worker uses, so argument
checks, timeouts and `current_job()` behave as in production; delays are ignored and a
failure dead-letters the job at once (no retries) and, by default, re-raises the task's
exception to the caller. See ``docs/testing.md``.

For authors of a store, `conveyor.testing.contract` is the contract suite every store runs
(it needs pytest, so importing this package does not load it).
"""

from __future__ import annotations

from conveyor.clock import FakeClock
from conveyor.testing.drain import DrainReport, drain, drain_async
from conveyor.testing.eager import (
    eager,
    make_test_app,
    run_eager,
    run_eager_async,
    use_memory_backend,
)

# The package root wires this in as the runner for `app.eager = True` (not part of __all__).
from conveyor.testing.eager import inline_runner as inline_runner

__all__ = [
    "DrainReport",
    "FakeClock",
    "drain",
    "drain_async",
    "eager",
    "make_test_app",
    "run_eager",
    "run_eager_async",
    "use_memory_backend",
]
