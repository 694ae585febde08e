"""The example app that ``conveyor demo`` runs: a shop's jobs, mail and events.

Its tasks sleep a few milliseconds to stand in for real work. Some fail on their first
attempt (chosen by their arguments, so the same jobs fail on every run) and succeed on the
retry; ``export_report`` always fails and ends dead after two retries. The backend URL comes
from ``CONVEYOR_URL``, which the demo command sets for its workers.

Run it by hand with ``conveyor worker --app conveyor.demo:app``.
"""

from __future__ import annotations

import asyncio
import random
import time

from conveyor.app import Conveyor
from conveyor.context import current_job
from conveyor.retry import fixed
from conveyor.task import JobSpec

app = Conveyor()

#: A short fixed backoff keeps the demo quick; real apps keep the exponential default.
QUICK = fixed(0.05)


class TransientError(Exception):
    """A failure that goes away on the next attempt (a timeout, a 503, ...)."""


def _flaky(key: int, every: int) -> None:
    """Fail the first attempt of every ``every``-th key."""
    if key % every == 0 and current_job().attempt == 1:
        raise TransientError(f"upstream hiccup for item {key} (first attempt only)")


# -- jobs --------------------------------------------------------------------------------
@app.task(name="demo.resize_image", queue="jobs", priority="normal", retries=3, backoff=QUICK)
async def resize_image(image_id: int, width: int = 640) -> dict[str, int]:
    """Pretend to resize an image; every 13th fails once."""
    await asyncio.sleep(0.002 + (image_id % 5) / 1000)
    _flaky(image_id, 13)
    return {"image_id": image_id, "width": width}


@app.task(name="demo.sync_product", queue="jobs", priority="low", retries=3, backoff=QUICK)
def sync_product(product_id: int) -> int:
    """A plain ``def`` task (runs in a thread); every 17th fails once."""
    time.sleep(0.003)
    _flaky(product_id, 17)
    return product_id


@app.task(name="demo.charge_order", queue="jobs", priority="high", retries=3, backoff=QUICK)
async def charge_order(order_id: int, amount_cents: int) -> str:
    """A high-priority payment step."""
    await asyncio.sleep(0.002)
    return f"charged order {order_id}: {amount_cents} cents"


@app.task(name="demo.export_report", queue="jobs", priority="low", retries=2, backoff=QUICK)
def export_report(report_id: int) -> None:
    """Always fails: shows a job ending dead after its retries."""
    time.sleep(0.001)
    raise RuntimeError(f"report {report_id}: the storage bucket does not exist")


# -- mail --------------------------------------------------------------------------------
@app.task(name="demo.send_email", queue="mail", priority="high", retries=3, backoff=QUICK)
async def send_email(to: str, subject: str) -> None:
    """Pretend to talk to an SMTP server; every 11th message fails once."""
    await asyncio.sleep(0.004)
    _flaky(int(to.split("@", maxsplit=1)[0].removeprefix("user")), 11)


@app.task(name="demo.send_digest", queue="mail", priority="low", retries=3, backoff=QUICK)
def send_digest(user_id: int) -> None:
    """A weekly digest, built in a thread."""
    time.sleep(0.004)


# -- events ------------------------------------------------------------------------------
@app.task(name="demo.track_event", queue="events", priority="normal", retries=3, backoff=QUICK)
async def track_event(name: str, user_id: int) -> None:
    """Record an analytics event."""
    await asyncio.sleep(0.001)


@app.task(name="demo.deliver_webhook", queue="events", priority="high", retries=3, backoff=QUICK)
async def deliver_webhook(endpoint_id: int, event: str) -> None:
    """POST an event to a customer's endpoint; every 7th endpoint fails once."""
    await asyncio.sleep(0.003)
    _flaky(endpoint_id, 7)


def workload(count: int, seed: int = 7) -> list[JobSpec]:
    """``count`` calls across every task, the same ones for the same seed.

    About one job in eight is delayed by 0.5 to 2 seconds; one in a hundred is a report
    export that ends dead.
    """
    rng = random.Random(seed)  # noqa: S311 - a repeatable workload, not security
    events = ("signup", "login", "checkout", "refund")
    specs: list[JobSpec] = []
    for i in range(count):
        pick = rng.random()
        spec: JobSpec
        if pick < 0.01:
            spec = export_report.call(i)
        elif pick < 0.20:
            spec = resize_image.call(i, width=rng.choice((320, 640, 1280)))
        elif pick < 0.35:
            spec = sync_product.call(i)
        elif pick < 0.45:
            spec = charge_order.call(i, rng.randrange(100, 50_000))
        elif pick < 0.60:
            spec = send_email.call(f"user{i}@example.com", subject="Your receipt")
        elif pick < 0.68:
            spec = send_digest.call(i)
        elif pick < 0.88:
            spec = track_event.call(rng.choice(events), i)
        else:
            spec = deliver_webhook.call(i, rng.choice(events))
        if rng.random() < 0.125:
            bound = spec.task.options(delay=round(rng.uniform(0.5, 2.0), 3))
            spec = bound.call(*spec.args, **spec.kwargs)
        specs.append(spec)
    return specs
