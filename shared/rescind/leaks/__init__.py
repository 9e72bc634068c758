"""Leak alerts: a leaked credential, reported by GitHub, AWS Health, GuardDuty or a scanner, made dead in seconds."""
