"""Speed and memory figures for mt5-copier. Run with ``python -m bench``."""
