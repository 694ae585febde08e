"""Looking inside a running worker: ``/debug/stacks`` and ``/debug/profile`` on its metrics port.

* `stacks.py` dumps every thread's stack and every asyncio task's chain of awaits, read from
  the server's thread so a blocked event loop still answers.
* `profile.py` samples every thread's CPU for N seconds and renders the profile with
  pyinstrument (HTML, or speedscope JSON).
* `routes.py` answers the two paths behind the access rules the dashboard follows
  (`conveyor.access`): open on a loopback address to loopback ``Host`` names, a bearer
  token (``CONVEYOR_DEBUG_TOKEN``) anywhere else, off without one.

`conveyor.metrics.server` serves them; ``conveyor debug stacks|profile`` fetches them.
"""

from __future__ import annotations

from conveyor.debug.routes import TOKEN_ENV, DebugRoutes, Reply

__all__ = ["TOKEN_ENV", "DebugRoutes", "Reply"]
