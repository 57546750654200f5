"""The adapter contract suite: what the copier relies on from an MT5 module, proven through MT5Adapter.

Every test takes the ``venue`` fixture, parametrised over the implementations: ``sim`` (a fresh mt5sim
terminal per test, always) and ``real`` (the real ``MetaTrader5`` package on a demo account, on Windows,
when the ``MT5_COPIER_CONTRACT_*`` variables name one; marked ``real_mt5``). See the README section
"Proving the adapter on your terminal" and ``tests/contract/venue.py`` for the safety rules.
"""
