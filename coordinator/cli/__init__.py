"""The command-line tools: ``mt5-copier`` and its subcommands (``app.py``), the operator's ``status`` and
``history`` (``operator.py``) and the demo (``demo.py``)."""
