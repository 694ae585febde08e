"""A minimal, real Django project for the Django integration's tests (test_django*.py)."""
