"""The demo's summary: computed from the stored job records, printed as a table."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from rich.table import Table

from conveyor.cli.common import clip, out
from conveyor.job import FINAL_STATES, JobRecord, State


@dataclass(slots=True, frozen=True)
class Summary:
    """What a demo run did, from the jobs' own records."""

    processed: int
    succeeded: int
    retried: int
    dead: int
    elapsed: float
    pickup_p50: float | None
    pickup_p99: float | None
    dead_reasons: tuple[tuple[str, int, str], ...]

    @property
    def rate(self) -> float:
        """Finished jobs per second of wall time."""
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of ``values``; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(records: list[JobRecord], elapsed: float) -> Summary:
    """Count outcomes and measure pickup (``run_at`` → ``started_at``) over ``records``."""
    final = [j for j in records if j.state in FINAL_STATES]
    pickups = [max(0.0, j.started_at - j.run_at) for j in final if j.started_at is not None]
    dead = [j for j in final if j.state is State.DEAD]
    per_task = Counter(j.task for j in dead)
    example = {j.task: clip(j.last_error, 100) for j in dead}
    return Summary(
        processed=len(final),
        succeeded=sum(j.state is State.SUCCEEDED for j in final),
        retried=sum(j.attempts > 1 for j in final),
        dead=len(dead),
        elapsed=elapsed,
        pickup_p50=percentile(pickups, 0.50),
        pickup_p99=percentile(pickups, 0.99),
        dead_reasons=tuple((t, n, example[t]) for t, n in per_task.most_common(3)),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def print_summary(summary: Summary, *, workers: int) -> None:
    """Print the summary table on stdout."""
    table = Table(title="Conveyor demo summary", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = (
        ("processed", f"{summary.processed:,}"),
        ("succeeded", f"{summary.succeeded:,}"),
        ("retried (attempts > 1)", f"{summary.retried:,}"),
        ("dead", f"{summary.dead:,}"),
        ("worker processes", str(workers)),
        ("elapsed", f"{summary.elapsed:.2f} s"),
        ("throughput", f"{summary.rate:,.0f} jobs/s"),
        ("pickup p50 (run_at → started)", _ms(summary.pickup_p50)),
        ("pickup p99 (run_at → started)", _ms(summary.pickup_p99)),
    )
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    out.print(
        "pickup counts the wait behind the backlog: every job was enqueued at once",
        highlight=False,
    )
    for task, count, example in summary.dead_reasons:
        out.print(f"dead: {count} x {task}, e.g. {example}", markup=False, highlight=False)
