"""Which accounts may end a workload by the generic `Workload Terminated` event.

A SPIFFE ID names no account, so without a binding anyone allowed `events:PutEvents` in any account whose
events reach Rescind could offboard any workload in the organisation. The generic event is acted on only
when the event's account (set by EventBridge, not by the sender) is one the workload is bound to: the stack's
own account, the accounts configured for the workload's trust domain, the account in an ARN workload id, or
an account where the inventory saw one of the workload's cloud resources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rescind.inventory.base import Inventory

_ARN_ACCOUNT = re.compile(r"^arn:[a-z-]+:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
ANY_TRUST_DOMAIN = "*"


def spiffe_trust_domain(workload_id: str) -> str | None:
    if not workload_id.startswith("spiffe://"):
        return None
    return workload_id.removeprefix("spiffe://").split("/", 1)[0].lower()


@dataclass(frozen=True)
class WorkloadAccounts:
    """The accounts each workload is bound to, from configuration and the inventory."""

    home_account: str | None = None  # the stack's own account: its PutEvents holders administer Rescind
    # trust domain (or "*" for every one) -> accounts whose generic events may end its workloads
    by_trust_domain: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def accounts_for(self, workload_id: str, inventory: Inventory | None) -> frozenset[str]:
        accounts: set[str] = set(self.by_trust_domain.get(ANY_TRUST_DOMAIN, ()))
        if self.home_account:
            accounts.add(self.home_account)
        domain = spiffe_trust_domain(workload_id)
        if domain is not None:
            accounts |= self.by_trust_domain.get(domain, frozenset())
        arn_account = _ARN_ACCOUNT.match(workload_id)
        if arn_account is not None:
            accounts.add(arn_account.group(1))
        if inventory is not None:
            accounts |= {binding.account_id for binding in inventory.resources_of(workload_id)}
        return frozenset(accounts)

    def problem(self, workload_id: str, account_id: str, inventory: Inventory | None) -> str | None:
        """None when `account_id` may end the workload; else why not, naming what it is bound to."""
        accounts = self.accounts_for(workload_id, inventory)
        if account_id in accounts:
            return None
        bound = ", ".join(sorted(accounts)) or "no account"
        return (
            f"workload {workload_id} is not bound to account {account_id}, where the event was put "
            f"(bound to: {bound}; see TrustDomainAccounts and the inventory)"
        )


def parse_trust_domain_accounts(text: str) -> dict[str, frozenset[str]]:
    """`prod.example=111111111111 222222222222;staging.example=333333333333` (`*` for every trust domain); empty
    entries are ignored (`;` is none). A problem names the entry by its position, never its text."""
    mapping: dict[str, frozenset[str]] = {}
    for position, entry in enumerate((part.strip() for part in text.split(";")), start=1):
        if not entry:
            continue
        domain, separator, accounts = entry.partition("=")
        domain = domain.strip().lower()
        listed = accounts.replace(",", " ").split()
        if not separator or not re.fullmatch(r"\*|[a-z0-9][a-z0-9.\-_]{0,252}", domain):
            raise ValueError(f"trust domain accounts: entry {position} is not <trust domain>=<account> [<account>...]")
        if not listed or not all(re.fullmatch(r"\d{12}", account) for account in listed):
            raise ValueError(f"trust domain accounts: entry {position} needs 12-digit account ids")
        mapping[domain] = mapping.get(domain, frozenset()) | frozenset(listed)
    return mapping
