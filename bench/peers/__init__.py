"""One module per system measured by ``redis_bench.py``, each run in its own interpreter.

Every module builds a `common.Peer`: how to enqueue the benchmark job (one call, from many
coroutines, in bulk), the command that starts one worker process, and the settings used.
The job is the same everywhere (`common.job_sync` / `common.job_async`): one ``INCR`` on a
counter, plus, in the latency run, the delay from enqueue to start. ``driver.py`` runs one
measurement for one peer and prints it as JSON; it needs only redis-py, so it runs in the
peers' virtualenvs as well as in Conveyor's.
"""
