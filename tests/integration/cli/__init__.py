"""The `rescind` run commands against a persistent local stack (one daemon per module), with real OpenBao."""
