"""Typed errors. Their class names are what the state machines Retry or Catch on (`ErrorEquals`).

Messages name references (accessors, serials, ARNs) and never a secret value.
"""

from __future__ import annotations


class RescindError(Exception):
    """Base of every error Rescind raises on purpose."""


# --- refused before anything is touched -------------------------------------------------------


class InvalidInput(RescindError):
    """The input failed validation. Nothing was called."""


class UnsupportedAction(InvalidInput):
    """The action kind does not apply to this credential kind."""


class UnsafePrefix(InvalidInput):
    """A prefix is too broad to revoke under (shorter than mount + role)."""


class ConfigurationError(RescindError):
    """The function or the CLI was deployed or configured wrongly: a variable is missing or malformed.

    Not InvalidInput: the event is not at fault, and no retry or other event fixes it. The message names the
    variable (never its value)."""


class PolicyRefusal(RescindError):
    """A safety rule refused the action: a hold, a protected identity, or a TTL that would be raised."""


# --- transient: the state machines Retry these ---------------------------------------------------


class TransientError(RescindError):
    """A backend failed in a way that is worth retrying."""


class VaultUnavailable(TransientError):
    """Vault/OpenBao could not be reached, was sealed, or answered 5xx/429."""


class AwsThrottled(TransientError):
    """AWS throttled the call (a rate or quota was exceeded)."""


class AwsUnavailable(TransientError):
    """AWS answered 5xx, or could not be reached or answered in time."""


class BatchOutOfTime(TransientError):
    """A batch stopped starting actions close to its function's timeout: what it did is recorded, the rest was not
    attempted, and the retry (a new invocation) acts on those."""


# --- terminal ---------------------------------------------------------------------------------


class ActionFailed(RescindError):
    """The backend refused the action (permissions, a conflict) in a way a retry will not fix."""


class AwsAccessDenied(ActionFailed):
    """AWS refused the call for the caller's identity, permissions or credentials."""


class AwsNotFound(ActionFailed):
    """AWS has no such resource. Modules that act on a credential decide what absence means for their kind."""


class CredentialStillAlive(RescindError):
    """Verification read the credential back and it still works. The action did not take effect."""


class LedgerConflict(RescindError):
    """A ledger record with the same key but different content already exists."""


class IncidentRunsExhausted(RescindError):
    """An incident's runs all ended failed, up to the bound: a redelivered event starts no more; a person must look."""
