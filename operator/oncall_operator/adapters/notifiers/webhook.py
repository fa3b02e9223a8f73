"""A generic JSON webhook: the Secret holds the URL; the body is :func:`notices.webhook_body` (version "1").

Receivers get the same ``X-Oncall-Delivery`` id (also ``id`` in the body) on every retry of
one notice, so they can drop duplicates: delivery is at-least-once. ``X-Oncall-Event`` names
the kind without parsing the body. Any 2xx is success.
"""

from typing import Any

from oncall_operator.adapters.notifiers import base
from oncall_operator.domain import notices


class WebhookSender(base.HttpSender):
    def body(self, notice: notices.Notice) -> dict[str, Any]:
        return notices.webhook_body(notice)

    def headers(self, notice: notices.Notice) -> dict[str, str]:
        return {
            "X-Oncall-Event": notice.kind.value,
            "X-Oncall-Delivery": notices.delivery_id(notice),
            "X-Oncall-Webhook-Version": notices.WEBHOOK_VERSION,
        }
