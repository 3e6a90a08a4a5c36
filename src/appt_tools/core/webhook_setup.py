"""The Cal.com webhook that tells us about bookings changed outside our tools, set up without Cal.com's
pages: one user-level subscription to our `/webhooks/calcom` route for the booking triggers we handle
(NOTES §8), signed with a secret made here and stored as the `calcom_webhook_secret` setting.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from appt_tools.calcom import CalcomClient
from appt_tools.core.reconcile import WEBHOOK_TRIGGERS
from appt_tools.errors import InvalidArgument
from appt_tools.models import Webhook

if TYPE_CHECKING:
    from appt_tools.store import Store

ROUTE = "/webhooks/calcom"
SECRET_SETTING = "calcom_webhook_secret"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Registered:
    webhook: Webhook
    created: bool  # False: an existing subscription to that URL was updated


def subscriber_url(value: str) -> str:
    """Our webhook route's public URL: https (http only on this machine), ending in /webhooks/calcom."""
    url = value.strip()
    parts = urlsplit(url)
    example = "e.g. https://appointments.example.com/webhooks/calcom"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidArgument("url", f"{value!r} is not a web address; {example}.")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise InvalidArgument("url", f"Cal.com signs deliveries, but they must still travel over https; {example}.")
    if not parts.path.rstrip("/").endswith(ROUTE) or parts.query or parts.fragment:
        raise InvalidArgument("url", f"must be this server's {ROUTE} route, with no query; {example}.")
    return url.rstrip("/")


async def register(calcom: CalcomClient, store: Store, url: str) -> Registered:
    """Create the subscription to `url`, or update the one there is, with a new secret, then store it.
    Cal.com is changed first: if it refuses, the stored secret still matches what it signs with."""
    url = subscriber_url(url)
    secret = secrets.token_urlsafe(32)
    existing = next((hook for hook in await calcom.webhooks() if hook.subscriber_url == url), None)
    if existing is None:
        hook = await calcom.create_webhook(url, WEBHOOK_TRIGGERS, secret)
    else:
        hook = await calcom.update_webhook(existing.id, url, WEBHOOK_TRIGGERS, secret)
    await store.set_setting(SECRET_SETTING, secret)
    return Registered(hook, created=existing is None)


async def remove(calcom: CalcomClient, target: str) -> list[Webhook]:
    """Delete the subscription with id `target`, or every one to the URL `target`; what was deleted."""
    hooks = await calcom.webhooks()
    chosen = [hook for hook in hooks if target in (hook.id, hook.subscriber_url, hook.subscriber_url + "/")]
    if not chosen:
        known = "; ".join(f"{h.id} → {h.subscriber_url}" for h in hooks) or "there are none"
        raise InvalidArgument("webhook", f"no Cal.com webhook has id or URL {target!r}; {known}.")
    return [await calcom.delete_webhook(hook.id) for hook in chosen]
