"""The state file (``copier.db``, SQLite): links, intents, history, orphan counts and the status board, with
the one migration list that upgrades every table in place."""
