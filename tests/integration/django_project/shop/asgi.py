"""The project's ASGI application, with Conveyor's dashboard at /admin/jobs/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django_app = get_asgi_application()

from conveyor.contrib.django import with_dashboard  # noqa: E402 - after Django is set up

application = with_dashboard(django_app, "/admin/jobs/")
# A second mount for the users with a permission (the check reads the database).
application = with_dashboard(
    application, "/ops/jobs/", permission=lambda user: user.has_perm("shop.view_note")
)
