"""SQS queue names: one SQS queue per Conveyor queue and priority, and the dead queue.

```
{prefix}{queue}[.fifo]          jobs of one queue at normal priority (the seed's queue per pool)
{prefix}{queue}-high[.fifo]     ... at high priority
{prefix}{queue}-low[.fifo]      ... at low priority
{prefix}dead-letters[.fifo]     dead jobs, kept for SQS's retention period
```

A claim takes every high queue it serves before any normal one, and so on: strict priority
across SQS queues, taken in order. So that a name reads back one way, a Conveyor queue whose
name ends in ``-high`` or ``-low`` cannot be an SQS queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.backends.sqs.options import NAME
from conveyor.errors import ConfigError
from conveyor.job import Priority

#: SQS's limit on a queue name, ``.fifo`` included.
MAX_NAME = 80
DEAD = "dead-letters"
FIFO = ".fifo"
_TAILS = ("-high", "-low")


@dataclass(frozen=True, slots=True)
class QueueName:
    """One SQS queue of this store: the Conveyor queue and priority it holds."""

    queue: str
    priority: Priority
    sqs: str


class Names:
    """Turns Conveyor queues into SQS queue names for one prefix, and back."""

    def __init__(self, prefix: str, *, fifo: bool) -> None:
        self.prefix = prefix
        self.suffix = FIFO if fifo else ""

    def of(self, queue: str, priority: Priority) -> QueueName:
        """The SQS queue for ``queue`` at ``priority``; a `ConfigError` if SQS cannot name it."""
        tail = "" if priority is Priority.NORMAL else f"-{priority.label}"
        name = f"{self.prefix}{queue}{tail}{self.suffix}"
        if queue.endswith(_TAILS) or queue == DEAD:
            raise ConfigError(
                f"queue {queue!r} cannot be an SQS queue: the sqs:// store names a queue's "
                "high and low priorities <queue>-high and <queue>-low, and keeps dead jobs in "
                f"{DEAD!r}; rename the queue"
            )
        if not queue or not NAME.fullmatch(queue) or len(name) > MAX_NAME:
            raise ConfigError(
                f"queue {queue!r} cannot be an SQS queue ({name!r}): SQS queue names are at "
                f"most {MAX_NAME} letters, digits, '-' and '_' (prefix and priority included); "
                "rename the queue"
            )
        return QueueName(queue, priority, name)

    @property
    def dead(self) -> str:
        """The SQS queue that keeps dead jobs."""
        return f"{self.prefix}{DEAD}{self.suffix}"

    def parse(self, sqs: str) -> QueueName | None:
        """The Conveyor queue an SQS queue name holds, or ``None`` when it is not one of ours."""
        if not sqs.startswith(self.prefix) or not sqs.endswith(self.suffix):
            return None
        if not self.suffix and sqs.endswith(FIFO):
            return None
        inner = sqs[len(self.prefix) : len(sqs) - len(self.suffix)]
        if not inner or inner == DEAD or not NAME.fullmatch(inner):
            return None
        for priority in (Priority.HIGH, Priority.LOW):
            if inner.endswith(f"-{priority.label}"):
                queue = inner.removesuffix(f"-{priority.label}")
                return QueueName(queue, priority, sqs) if queue else None
        return QueueName(inner, Priority.NORMAL, sqs)
