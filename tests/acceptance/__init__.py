"""Acceptance tests: the real ``conveyor worker`` CLI in subprocesses, real signals, SQLite."""
