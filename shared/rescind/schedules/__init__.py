"""Schedules: sweeps that keep the estate short-lived when no alert fires (rotation by age, TTL ceilings,
orphans, PKI hygiene, the inventory report). Each is paginated, resumable, bounded, idempotent, with a dry run."""
