"""Integrations with the frameworks and tools Conveyor's users already run.

Each lives in its own module or package and imports its framework only when used, so
``import conveyor`` never needs any of them:

* `conveyor.contrib.django`: a Django app (``INSTALLED_APPS``), ``manage.py conveyor ...``,
  database connections closed around jobs, enqueue on commit, the dashboard behind
  Django's login;
* `conveyor.contrib.fastapi`: a lifespan that opens and closes the store, an enqueue
  dependency, the dashboard behind the host app's login (plain Starlette apps use it too).

Integrations sit above the rest of Conveyor: nothing in Conveyor imports them.
"""
