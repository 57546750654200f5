"""One process per MT5 terminal: reports its orders to the coordinator and executes its commands."""
