"""The fuzz suite: registry.py lists the targets, test_fuzz.py runs them (see README.md)."""
