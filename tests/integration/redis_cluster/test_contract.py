"""The contract suite (`conveyor.testing.contract`) on a ``redis+cluster://`` store of
three shards on a real six-node Redis Cluster."""

from conveyor.testing.contract import *  # noqa: F403 - the suite's tests and fixtures
