"""What every run shares, offboarding, leak response or manual revocation: a response (plan, act, verify, close)."""
