"""The running coordinator: worker links and sessions, the engine that turns reports into plans and plans into
commands, settlement, dispatch, the ledger of what is in flight, local worker processes, and the run loop.
Single-threaded on the coordinator's loop; every clock is injected.
"""
