"""Hooks the package root fills in for lower layers, without importing them.

``default_eager`` makes the eager runner of an app that was given none (``app.eager =
True`` on a plain app): `conveyor/__init__` sets it to `conveyor.testing`'s inline runner,
imported on first use, so the app never imports what sits above it and ``import conveyor``
loads neither.
"""

from __future__ import annotations

from collections.abc import Callable

#: Makes an eager runner (a `conveyor.app.EagerRunner`); ``None`` until the root sets it.
default_eager: Callable[[], object] | None = None
