"""A chaos harness: genhook's real processes on 127.0.0.1, a load of jobs, faults injected
while they run, and the checks that say whether anything was lost or charged twice.

One module a piece, shared by ``tests/test_chaos.py`` (100 jobs, a fixed fault sequence)
and ``bench/chaos.py`` (thousands of jobs, random fault timing):

    stack.py     redis-server, a fresh PostgreSQL database, the simulator, the API, one
                 worker and the scheduler, each in its own process group; the fault actions
    receiver.py  the webhook receiver: records every POST, stops and restarts on its port
    load.py      the clients: submissions with an Idempotency-Key (retried after a connection
                 error or a 5xx) and GETs, every answer recorded with its time
    plan.py      fault plans (the issue's sequence, or random timing) and the runner that
                 plays one, recording each fault's window
    checks.py    the wait for recovery, and the checks after the faults
    report.py    their counts in one report: the failed checks in words, rows to print
    run.py       one run from start to end, everything stopped and removed afterwards
"""
