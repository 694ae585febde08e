"""The SQS store (``sqs://REGION``): jobs as Amazon SQS messages, on aiobotocore.

It offers the core protocol (and `Limits` when ``?limits=`` names a store to keep them);
what SQS cannot do (list, count or cancel jobs, keep history, elect a scheduler) it lacks,
and callers that need it say so in one line. Modules:

* `options` — the URL and its options;
* `naming` — one SQS queue per Conveyor queue and priority, and the dead queue;
* `codec` — the message body;
* `connection` — the aiobotocore client (imported lazily), queue URLs and errors;
* `messages` — batches, delays and re-sends;
* `leases` — the `LeaseBook`, which refuses late acknowledgements;
* `claiming` — receiving in priority order and what happens to each message;
* `backend` — `SqsBackend`, the core verbs.

docs/sqs.md is the user's guide: options, what maps to what, limits and costs.
"""

from __future__ import annotations

from conveyor.backends.sqs.backend import SqsBackend
from conveyor.backends.sqs.options import SqsOptions, parse_url

__all__ = ["SqsBackend", "SqsOptions", "parse_url"]
