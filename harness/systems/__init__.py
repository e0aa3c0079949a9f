"""One module per system: its experiments, plots and CLI commands (see harness.registry)."""
