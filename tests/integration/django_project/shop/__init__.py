"""The test project's one app: orders, notes written by jobs, and the Conveyor app."""
