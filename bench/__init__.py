"""Rescind's benchmark harness (issue 7): `python -m bench.run`. Not a test: nothing here fails on a time."""
