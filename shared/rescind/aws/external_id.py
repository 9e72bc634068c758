"""The external id Rescind presents when it assumes a member account's execution role.

member-account.yaml's role requires it (`sts:ExternalId`), so it is required wherever Rescind crosses accounts.
STS allows 2-1224 characters of [\\w+=,.@:/-]; Rescind asks for at least 16, as member-account.yaml's `ExternalId`
and template.yaml's `CrossAccountExternalId` do (tests/infra keeps the three in step), so it cannot be guessed.
No imports: the settings use it at cold start.
"""

from __future__ import annotations

MIN_EXTERNAL_ID_LENGTH = 16
MAX_EXTERNAL_ID_LENGTH = 1224
EXTERNAL_ID_PATTERN = rf"^[\w+=,.@:/\-]{{{MIN_EXTERNAL_ID_LENGTH},{MAX_EXTERNAL_ID_LENGTH}}}$"
EXTERNAL_ID_RULE = (
    f"{MIN_EXTERNAL_ID_LENGTH} to {MAX_EXTERNAL_ID_LENGTH} letters, digits and +=,.@:/_- "
    "(the member stacks' ExternalId)"
)
