"""One suite of state-driver tests (abstract.py) run against every snapshot model."""
