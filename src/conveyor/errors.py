"""Every error Conveyor raises, as one tree.

```
ConveyorError
├── ConfigError                 a setting is missing or has a wrong value
│   └── InvalidOption           an enqueue or task option is out of range (also a ValueError)
├── SerializationError          an argument or result is not strict JSON
│   └── PayloadTooLarge         the encoded payload is over the size limit
├── BackendError                the backend could not do what was asked
│   ├── BackendUnavailable      the server or file cannot be reached
│   └── SchemaVersionError      the storage schema is older or newer than this code
├── JobNotFound                 no job has that id
├── JobFailed                   a job you wait on ended dead or cancelled
├── UnknownTask                 no task is registered under that name
├── InvalidTransition           a job state change the state table forbids
└── ListenersFailed             dispatch(raise_errors=True): some listeners failed

JobControl                      raised by task code to steer its own job (Retry, RateLimited, Fail)
├── Retry                       run again after a delay (counts as an attempt)
└── Fail                        fail now, never retry: the job goes to the dead-letter store
```

Errors name what happened, which input caused it and what to do next.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class of every error Conveyor raises."""


class ConfigError(ConveyorError):
    """A setting is missing or has a value Conveyor cannot use."""


class InvalidOption(ConfigError, ValueError):
    """An enqueue or task option has a value that cannot work (NaN, infinite, negative...).

    Also a `ValueError`, so code that validates its own inputs can catch it as one.
    """


class SerializationError(ConveyorError, TypeError):
    """An argument, header or result cannot be stored as strict JSON."""


class PayloadTooLarge(SerializationError):
    """The encoded arguments are larger than the configured payload limit."""


class BackendError(ConveyorError):
    """The backend failed to carry out an operation."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached (server down, file unreadable, timeout)."""


class SchemaVersionError(BackendError):
    """The backend's stored schema does not match what this version of Conveyor expects."""


class JobNotFound(ConveyorError, LookupError):
    """No job with the given id exists (it may have been pruned after its retention)."""


class UnknownTask(ConveyorError, LookupError):
    """No task is registered under the given name."""


class InvalidTransition(ConveyorError):
    """A job state change that the state table does not allow."""


class ListenersFailed(ConveyorError):
    """Listeners of a dispatched event failed; ``errors`` holds their exceptions.

    Raised only when asked (``dispatch(event, raise_errors=True)``), after every listener
    had its turn.
    """

    def __init__(self, message: str, errors: list[Exception]) -> None:
        super().__init__(message)
        self.errors = errors


class JobControl(Exception):
    """Base of the exceptions task code raises on purpose to steer its own job."""


class Retry(JobControl):
    """Ask for the job to run again after ``delay`` seconds.

    It counts as a failed attempt: when no retries are left the job is dead-lettered.
    With ``delay=None`` the task's backoff decides the delay.
    """

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class RateLimited(JobControl):
    """The service the task calls said "too many requests": run the job again later.

    Raise it on an HTTP 429 (pass the ``Retry-After`` seconds as ``retry_after``). The job
    waits in storage and runs again after that delay *without* using one of its attempts,
    up to the task's ``max_rate_limited`` times (default 25); after that a further
    `RateLimited` counts as a failed attempt. With ``retry_after=None`` the delay doubles
    from 1 second with each reschedule, up to 5 minutes.
    """

    def __init__(self, retry_after: float | None = None, reason: str = "rate limited") -> None:
        if retry_after is not None and retry_after < 0:
            retry_after = 0.0
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason


class Fail(JobControl):
    """Fail the job at once without retrying; it goes to the dead-letter store."""

    def __init__(self, reason: str = "failed by task") -> None:
        super().__init__(reason)
        self.reason = reason


class JobFailed(ConveyorError):
    """The job ended dead or cancelled, so it has no result; ``record`` says why."""

    def __init__(self, message: str, record: object) -> None:
        super().__init__(message)
        self.record = record
