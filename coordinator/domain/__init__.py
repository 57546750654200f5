"""The domain: what the copier decides and the words it decides in. Pure: no I/O, no clock, no processes.

The planner (``planner.py``, with ``desired.py``, ``sizing.py``, ``market_checks.py``, ``clocks.py``) is the
one decider; its ``Action``s (``actions.py``) carry their reason and their link move. The link lifecycle,
the orphan tracker, the retry policy, the domain events and the run's report are the model it works over.
Depends on ``config`` and ``protocol`` only, never on the runtime or the state file.
"""
