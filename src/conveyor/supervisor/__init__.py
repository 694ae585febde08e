"""Supervisor: `conveyor run` keeps pools of worker processes running (see supervisor.py)."""
