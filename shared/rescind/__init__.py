"""Rescind: event-driven rotation and revocation for non-human identities."""
