"""Settings of the test project; the database and Conveyor's settings come from SHOP_* variables.

``SHOP_DB`` is ``sqlite:PATH`` or ``postgresql://...`` (a database of the test's own);
``SHOP_CONVEYOR`` is the ``CONVEYOR`` dict as JSON.
"""

import json
import os
from urllib.parse import urlsplit

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "shop.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "shop",
    "conveyor.contrib.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
LOGIN_URL = "/accounts/login/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only

_db = os.environ.get("SHOP_DB", "sqlite:db.sqlite3")
if _db.startswith("sqlite:"):
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _db.removeprefix("sqlite:")}
    }
else:
    _parts = urlsplit(_db)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _parts.path.lstrip("/"),
            "USER": _parts.username or "",
            "PASSWORD": _parts.password or "",
            "HOST": _parts.hostname or "",
            "PORT": _parts.port or "",
        }
    }
# SHOP_CONN_MAX_AGE: seconds, or "none" for connections kept for good (Django's None).
_age = os.environ.get("SHOP_CONN_MAX_AGE", "0")
DATABASES["default"]["CONN_MAX_AGE"] = None if _age == "none" else int(_age)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = os.environ.get("SHOP_CONN_HEALTH_CHECKS") == "1"

CONVEYOR = json.loads(os.environ.get("SHOP_CONVEYOR", '{"APP": "shop.jobs:app"}'))
