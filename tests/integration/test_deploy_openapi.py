"""The dashboard's OpenAPI document is valid, declares its security, and every GET's answer
matches the schema it declares, with and without a token (issue 18).

Every object schema is checked closed (``additionalProperties: false`` added here), so a
field the API sends but the document does not declare fails.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from tests.dashboard.conftest import build_app, client_for, make_dead

from conveyor.dashboard import create_dashboard
from conveyor.dashboard.api import OPERATIONS
from conveyor.dashboard.openapi import document
from conveyor.job import HistoryPoint, WorkerInfo

pytestmark = pytest.mark.timeout(120)

TOKEN = "a-token-of-at-least-sixteen-chars"


def _validator_module() -> Any:
    try:
        from openapi_spec_validator import validate
    except ImportError:
        message = "openapi-spec-validator is not installed (the test extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return validate


def _closed(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def test_the_document_is_valid_openapi_with_security_everywhere() -> None:
    validate = _validator_module()
    doc = document(OPERATIONS)
    validate(copy.deepcopy(doc))
    schemes = set(doc["components"]["securitySchemes"])
    used: set[str] = set()
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert op.get("security"), f"{method.upper()} {path} declares no security"
            assert "401" in op["responses"]
            for requirement in op["security"]:
                used |= set(requirement)
    assert used == schemes, f"declared but never used: {schemes - used}"


async def _seed(url: str) -> tuple[Any, dict[str, str]]:
    app = build_app(url)
    send, build = app.tasks["mail.send"], app.tasks["reports.build"]
    ready = send.enqueue("a@example.com").id
    build.enqueue("weekly")
    backend = await app.open()
    dead = await make_dead(backend, "reports", "ValueError: no", "Traceback: ...")
    now = time.time()
    await backend.telemetry.record_history(
        [HistoryPoint(int(now // 60) * 60 - 60, "mail", 3, 1)], keep=86400
    )
    info = WorkerInfo(id="w-1", host="h", pid=1, started_at=now, last_seen=now, pool="jobs")
    await backend.telemetry.register_worker(info, 60.0)
    return app, {"ready": ready, "dead": dead}


async def _check_every_get(url: str) -> None:
    app, ids = await _seed(url)
    try:
        await _check_with_a_token(app, ids)
        await _check_without_credentials_configured(app, ids)
    finally:
        await app.aclose()


def _gets() -> list[tuple[str, dict[str, Any]]]:
    doc = document(OPERATIONS)
    return [(op.path, doc["paths"][op.path]["get"]) for op in OPERATIONS if op.method == "GET"]


_COMPONENTS = _closed(document(OPERATIONS)["components"])


async def _check_with_a_token(app: Any, ids: dict[str, str]) -> None:
    dashboard = create_dashboard(app, token=TOKEN)
    try:
        async with client_for(dashboard) as client:
            for template, entry in _gets():
                for job in (ids["ready"], ids["dead"]):
                    path = template.replace("{job_id}", job)
                    # Without the token: 401, answered with the declared Error schema
                    refused = await client.get(path)
                    assert refused.status_code == 401, path
                    _matches(refused.json(), entry["responses"]["401"], _COMPONENTS, path)
                    # With it: 200, and the answer matches the declared schema exactly
                    answer = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
                    assert answer.status_code == 200, (path, answer.text)
                    _matches(answer.json(), entry["responses"]["200"], _COMPONENTS, path)
    finally:
        await dashboard.state.dashboard.close()


async def _check_without_credentials_configured(app: Any, ids: dict[str, str]) -> None:
    # Without a token or password (loopback only), the same answers without credentials
    dashboard = create_dashboard(app)
    try:
        async with client_for(dashboard) as client:
            for template, entry in _gets():
                path = template.replace("{job_id}", ids["dead"])
                answer = await client.get(path)
                assert answer.status_code == 200, (path, answer.text)
                _matches(answer.json(), entry["responses"]["200"], _COMPONENTS, path)
    finally:
        await dashboard.state.dashboard.close()


def _matches(body: Any, response: dict[str, Any], components: Any, path: str) -> None:
    schema = {**response["content"]["application/json"]["schema"], "components": components}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, f"{path}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )


def test_every_get_matches_its_schema_with_and_without_a_token(tmp_path: Path) -> None:
    asyncio.run(_check_every_get(f"sqlite:///{tmp_path / 'store.db'}"))
