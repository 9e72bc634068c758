"""Small helpers shared by the Vault credential modules: paginated LISTs, Vault's times and TTL arithmetic."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import hvac
import hvac.exceptions

from rescind.exceptions import InvalidInput
from rescind.models import Action
from rescind.vault.client import read_data

# OpenBao's warning when a LIST endpoint does not paginate: the answer is then the whole list.
_PAGINATION_IGNORED = "ignored these unrecognized parameters"


# Keys asked for per page of a paged LIST.
LIST_PAGE_SIZE = 500


def list_keys(client: hvac.Client, path: str, *, paged: bool = True, page_size: int | None = None) -> list[str]:
    """Every key of a LIST endpoint, following OpenBao's `after`/`limit` pagination where it is honoured.

    OpenBao compares `after` with its storage keys, which some endpoints list in another form: PKI `certs` lists
    `aa:bb` serials stored as `aa-bb` (the keys after a page's last one that share its first byte are skipped),
    AppRole `secret-id` lists accessors stored by HMAC (pages come unsorted, most keys are skipped). Such an
    endpoint must be listed with `paged=False`: one LIST, the whole list (a short page cannot show the loss).
    An endpoint that ignores the parameters answers with the whole list and a warning saying so. An
    empty listing (404 with no error text) gives []; any other error propagates for the caller to judge.
    """
    limit = page_size or LIST_PAGE_SIZE
    keys: list[str] = []
    seen: set[str] = set()
    after: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": limit} if paged else {}
        if after is not None:
            params["after"] = after
        try:
            response = client.adapter.list(path, params=params)
        except hvac.exceptions.InvalidPath as error:
            if not error.errors:
                break
            raise
        page = [str(key) for key in read_data(response).get("keys") or []]
        new = [key for key in page if key not in seen]
        keys.extend(new)
        seen.update(new)
        warnings = response.get("warnings") if isinstance(response, dict) else None
        unpaginated = any(_PAGINATION_IGNORED in str(warning) for warning in warnings or [])
        # `not new` also ends the loop if a server ignores `after` without saying so.
        if not paged or unpaginated or len(page) < limit or not new:
            break
        after = page[-1]
    return keys


_FRACTION = re.compile(r"\.(\d+)")


def parse_vault_time(value: Any) -> datetime | None:
    """Vault's times: unix seconds (a token's creation_time) or RFC 3339 with up to nanoseconds. Aware, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value), UTC)
    if not isinstance(value, str) or not value:
        return None
    # Python 3.11 reads at most microseconds.
    text = _FRACTION.sub(lambda match: "." + match.group(1)[:6].ljust(6, "0"), value.replace("Z", "+00:00"), count=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def as_int(value: Any) -> int:
    """Vault's numbers arrive as int, or as a JSON string for some fields; absent means 0."""
    if value is None or value == "":
        return 0
    return int(value)


def ttl_target(action: Action) -> int:
    if action.params.ttl_seconds is None:
        raise InvalidInput(f"{action.action_id}: shorten_ttl needs params.ttl_seconds")
    return action.params.ttl_seconds


def ttl_is_at_or_below(ttl_seconds: int, target_seconds: int) -> bool:
    """A TTL of 0 means "never expires", which is never at or below a target."""
    return 0 < ttl_seconds <= target_seconds
