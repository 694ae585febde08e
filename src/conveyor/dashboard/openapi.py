"""The OpenAPI 3.1 document of the JSON API, made from `conveyor.dashboard.api.OPERATIONS`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor import __version__

if TYPE_CHECKING:
    from conveyor.dashboard.api import Operation

_STR: dict[str, Any] = {"type": "string"}
_NUM: dict[str, Any] = {"type": "number"}
_INT: dict[str, Any] = {"type": "integer"}
_TIME: dict[str, Any] = {"type": ["number", "null"], "description": "seconds since the epoch"}
_COUNTS: dict[str, Any] = {
    "type": "object",
    "description": "jobs by state",
    "properties": {
        s: _INT for s in ("scheduled", "ready", "running", "succeeded", "dead", "cancelled")
    },
}


def _obj(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if description:
        schema["description"] = description
    return schema


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_PROGRESS: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "the latest progress the job's current attempt reported, or null",
    "properties": {
        "done": _NUM,
        "total": {"type": ["number", "null"]},
        "note": {"type": ["string", "null"]},
        "attempt": {**_INT, "description": "the attempt that reported it"},
        "at": {**_NUM, "description": "when the store kept the report (seconds since the epoch)"},
        "fraction": {"type": ["number", "null"], "description": "done / total, 0 to 1"},
        "text": {**_STR, "description": "one line, e.g. '40/100 (40%) resizing'"},
    },
}
_ATTEMPT = _obj(
    {
        "attempt": _INT,
        "outcome": {"enum": ["succeeded", "failed", "dead", "lost", "running"]},
        "worker_id": {"type": ["string", "null"]},
        "started_at": _TIME,
        "ended_at": _TIME,
        "duration": {"type": ["number", "null"], "description": "seconds"},
        "error": {"type": ["string", "null"]},
        "traceback": {"type": ["string", "null"], "description": "the task's own frames"},
    },
    "one attempt: the logged ones that did not succeed, then the running or successful one",
)

_JOB_SUMMARY = _obj(
    {
        "id": _STR,
        "task": _STR,
        "queue": _STR,
        "priority": {"enum": ["high", "normal", "low"]},
        "state": _STR,
        "attempts": _INT,
        "max_retries": _INT,
        "run_at": _TIME,
        "created_at": _TIME,
        "updated_at": _TIME,
        "failed_at": _TIME,
        "last_error": {"type": ["string", "null"]},
        "unreadable": {
            "type": ["string", "null"],
            "description": "set when the stored record cannot be read: what is wrong with it",
        },
        "progress": _PROGRESS,
    }
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "Overview": _obj(
        {
            "now": _NUM,
            "totals": _COUNTS,
            "queues": _list(
                _obj(
                    {
                        "name": _STR,
                        "paused": {"type": "boolean"},
                        "oldest_wait": {
                            "type": ["number", "null"],
                            "description": "seconds the oldest ready job has waited",
                        },
                        "counts": _COUNTS,
                        "ready": {
                            "type": "object",
                            "description": "ready jobs by priority",
                            "properties": {p: _INT for p in ("high", "normal", "low")},
                        },
                        "priorities": _list(_obj({"priority": _STR, "counts": _COUNTS})),
                    }
                )
            ),
            "counters": _obj({"fenced": _INT, "recovered": _INT, "poisoned": _INT}),
            "workers": {
                "type": ["integer", "null"],
                "description": "live workers; null when the store keeps no worker registry",
            },
            "telemetry": {
                "type": "boolean",
                "description": "whether the store keeps job history and a worker registry "
                "(without it /api/history and /api/workers answer 501)",
            },
        }
    ),
    "History": _obj(
        {
            "minutes": _INT,
            "series": _list(
                _obj(
                    {
                        "minute": _INT,
                        "succeeded": _INT,
                        "failed": _INT,
                        "failure_rate": {"type": ["number", "null"]},
                    }
                )
            ),
            "queues": {
                "type": "object",
                "additionalProperties": _obj({"succeeded": _INT, "failed": _INT}),
            },
        },
        "per-minute finished attempts, oldest first, gaps as zeros",
    ),
    "Workers": _obj(
        {
            "workers": _list(
                _obj(
                    {
                        "id": _STR,
                        "host": _STR,
                        "pid": _INT,
                        "pool": {"type": ["string", "null"]},
                        "queues": _list(_STR),
                        "running": _INT,
                        "concurrency": {"type": ["integer", "null"]},
                        "processed": _INT,
                        "failed": _INT,
                        "utilisation": {"type": ["number", "null"]},
                        "rss_mb": {"type": ["number", "null"]},
                        "started_at": _NUM,
                        "uptime": _NUM,
                        "last_seen": _NUM,
                        "stats": {"type": "object"},
                    }
                )
            )
        }
    ),
    "Job": _JOB_SUMMARY,
    "Jobs": _obj({"jobs": _list(_ref("Job")), "limit": _INT, "offset": _INT}),
    "JobDetail": _obj(
        {
            **_JOB_SUMMARY["properties"],
            "args": {"type": ["array", "null"]},
            "kwargs": {"type": ["object", "null"]},
            "payload": {"type": "string", "description": "the stored arguments, as text"},
            "payload_error": {"type": ["string", "null"]},
            "timeout": {"type": ["number", "null"], "description": "seconds"},
            "started_at": _TIME,
            "finished_at": _TIME,
            "unique_key": {"type": ["string", "null"]},
            "recoveries": {
                "type": ["integer", "null"],
                "description": "times its lease expired and the job was put back",
            },
            "worker_id": {
                "type": ["string", "null"],
                "description": "the worker running it (or that ran it last)",
            },
            "headers": {"type": "object"},
            "result": {},
            "traceback": {"type": ["string", "null"]},
            "timeline": _list(_obj({"at": _NUM, "event": _STR})),
            "raw": {
                "type": ["object", "null"],
                "additionalProperties": _STR,
                "description": "an unreadable record's stored fields, as text",
            },
            "actions": _list({"enum": ["retry", "cancel", "delete"]}),
            "attempt_history": _list(_ATTEMPT),
        },
        "every field of JobRecord.to_dict, plus the decoded arguments and a timeline",
    ),
    "Schedules": _obj(
        {
            "app_loaded": {"type": "boolean"},
            "ticks_recorded": {
                "type": "boolean",
                "description": "whether the store records cron ticks (else last runs are null)",
            },
            "entries": _list(
                _obj(
                    {
                        "name": _STR,
                        "task": _STR,
                        "schedule": _STR,
                        "timezone": _STR,
                        "missed": _STR,
                        "next_run": {"type": ["string", "null"]},
                        "next_run_at": {"type": ["number", "null"]},
                        "error": {"type": ["string", "null"]},
                        "last_run": {"type": ["string", "null"]},
                        "last_run_at": _TIME,
                    }
                )
            ),
        }
    ),
    "Csrf": _obj({"csrf_token": _STR, "header": _STR}),
    "Ids": _obj(
        {"ids": _list(_STR), "all": {"type": "boolean"}},
        'either {"ids": ["..."]} or {"all": true}',
    ),
    "Outcome": _obj({"action": _STR, "count": _INT, "message": _STR}),
    "OpenAPI": {"type": "object"},
    "Error": _obj({"error": _STR}),
}

_ERRORS = {
    "400": "bad parameter or body",
    "401": "authentication required",
    "403": "read-only dashboard, or the CSRF check failed",
    "404": "no such job",
    "501": "the store lacks what this route reads (history, the worker registry)",
    "503": "the backend cannot be reached",
}


#: Reading: a bearer token, the dashboard's password (basic auth) or a login session. With
#: neither a token nor a password configured (loopback only), no credentials are needed.
_GET_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}, {"session": []}]
#: Acting: a bearer token alone (a browser never adds it by itself), or the CSRF header with
#: the password, the session or, without authentication, alone.
_POST_SECURITY: list[dict[str, list[str]]] = [
    {"bearer": []},
    {"basic": [], "csrf": []},
    {"session": [], "csrf": []},
    {"csrf": []},
]


def document(operations: Sequence[Operation], prefix: str = "") -> dict[str, Any]:
    """The OpenAPI document; ``prefix`` is where the dashboard is mounted."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "parameters": [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.where == "path",
                    "description": p.description,
                    "schema": {"type": p.type},
                }
                for p in op.params
            ],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": _ref(op.response)}},
                },
                **{
                    code: {
                        "description": text,
                        "content": {"application/json": {"schema": _ref("Error")}},
                    }
                    for code, text in _ERRORS.items()
                },
            },
        }
        entry["security"] = _POST_SECURITY if op.method == "POST" else _GET_SECURITY
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Conveyor dashboard API",
            "version": __version__,
            "description": (
                "What the dashboard's pages show, as JSON, and the same actions. POSTs need "
                "the X-CSRF-Token header matching the conveyor_csrf cookie (GET /api/csrf "
                "gives both) or Authorization: Bearer <token>. With a token or password "
                "configured every route needs credentials (a bearer token, basic auth with "
                "the password, or the session cookie /login sets) and answers 401 without."
            ),
        },
        "servers": [{"url": str(prefix).rstrip("/") or "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "session": {"type": "apiKey", "in": "cookie", "name": "conveyor_session"},
            },
        },
    }
