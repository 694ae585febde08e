"""The web dashboard: queues, workers, jobs, failures and schedules, live, in a browser.

``conveyor dashboard`` serves it (Starlette and uvicorn, bound to 127.0.0.1 by default);
`create_dashboard` returns the same ASGI app to mount in an existing FastAPI or Starlette
project. Server-rendered pages, one small static script for live refresh and charts, no
build step and nothing from a CDN. A JSON API under ``/api`` (OpenAPI at
``/api/openapi.json``) serves the same data. See ``docs/dashboard.md``.

Needs the ``dashboard`` extra: ``pip install 'conveyor[dashboard]'``.
"""

from __future__ import annotations

from conveyor.dashboard.app import Dashboard, create_dashboard

__all__ = ["Dashboard", "create_dashboard"]
