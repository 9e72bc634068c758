"""Fault tests: a real OpenBao with on-disk storage, crashed and restarted in the middle of Rescind's work."""
