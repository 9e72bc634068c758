"""GitHub secret scanning alerts: the webhook's signature, its parsing, replay protection and the bus event.

GitHub posts `secret_scanning_alert` webhooks to the function URL. A delivery is accepted only when its
`X-Hub-Signature-256` is the HMAC-SHA256 of the exact body under the webhook secret. What goes on the bus is a
`GitHubAlertNotice`: references only (repository, alert number, secret type). The REST API's alert carries the
value (`secret`); `fetch_alert_secret` reads it for the leak responder, in-process only.

One module per concern; this package's names are the public ones:
- `wire`: the delivery as sent (headers, payload, the notice) and its rejections;
- `signature`: the HMAC, and the webhook secret;
- `replay`: the delivery and its signed body claimed in the ledger;
- `bus`: the notice put on EventBridge;
- `delivery`: one delivery end to end, in its order (its docstring says why);
- `rest`: GitHub's REST API, with the token.
"""

from rescind.leaks.github.bus import DETAIL_TYPE, EVENT_SOURCE, EventPublisher, put_alert_notice
from rescind.leaks.github.delivery import RECEIPT_STATUS, DeliveryReceipt, ReceiptStatus, receive_github_delivery
from rescind.leaks.github.replay import (
    BODY_PK_PREFIX,
    DELIVERY_PK_PREFIX,
    DELIVERY_SK,
    claim_delivery,
    delivery_already_claimed,
    signed_body_digest,
)
from rescind.leaks.github.rest import (
    GITHUB_API_VERSION,
    KEY_ID_SEARCH_LINES,
    GitHubAlertNotFound,
    GitHubUnavailable,
    fetch_alert_secret,
    find_access_key_ids_beside_alert,
    load_github_token,
    validate_repository,
)
from rescind.leaks.github.signature import github_signature, load_webhook_secret, verify_github_signature
from rescind.leaks.github.wire import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    LEAK_ACTIONS,
    MAX_BODY_BYTES,
    PING_EVENT,
    REJECTION_STATUS,
    SECRET_SCANNING_EVENT,
    SIGNATURE_HEADER,
    GitHubAlertNotice,
    WebhookRejected,
    WebhookRejectionReason,
    github_delivery_id,
    github_event_name,
    loggable_header,
    parse_secret_scanning_delivery,
)

__all__ = [
    "BODY_PK_PREFIX",
    "DELIVERY_HEADER",
    "DELIVERY_PK_PREFIX",
    "DELIVERY_SK",
    "DETAIL_TYPE",
    "EVENT_HEADER",
    "EVENT_SOURCE",
    "GITHUB_API_VERSION",
    "KEY_ID_SEARCH_LINES",
    "LEAK_ACTIONS",
    "MAX_BODY_BYTES",
    "PING_EVENT",
    "RECEIPT_STATUS",
    "REJECTION_STATUS",
    "SECRET_SCANNING_EVENT",
    "SIGNATURE_HEADER",
    "DeliveryReceipt",
    "EventPublisher",
    "GitHubAlertNotFound",
    "GitHubAlertNotice",
    "GitHubUnavailable",
    "ReceiptStatus",
    "WebhookRejected",
    "WebhookRejectionReason",
    "claim_delivery",
    "delivery_already_claimed",
    "fetch_alert_secret",
    "find_access_key_ids_beside_alert",
    "github_delivery_id",
    "github_event_name",
    "github_signature",
    "load_github_token",
    "load_webhook_secret",
    "loggable_header",
    "parse_secret_scanning_delivery",
    "put_alert_notice",
    "receive_github_delivery",
    "signed_body_digest",
    "validate_repository",
    "verify_github_signature",
]
