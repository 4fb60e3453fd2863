"""Alerts that reach a person: a Slack-compatible webhook, one message per incident.

An *incident* has a stable key (``run_failure:<run id>``, ``check:<asset>/<check>:<first
failing evaluation>`` ...). `send_alert` posts once per key: the ledger keeps an
``alert.sent`` event per incident (who/what/when, delivered or not), and a key already there
is never posted again, so a sensor tick that is retried, a restarted daemon or a check that
stays red sends nothing new.

The webhook is ``AISG_ALERT_WEBHOOK_URL`` (Slack incoming webhook, or anything accepting the
same JSON: ``{"text": ..., "attachments": [...]}``). Without one, the alert is still recorded
in the ledger and logged, and ``delivered`` is false: nothing fails silently, but nobody is
paged either, and ``aisg`` deployments should set it (docs/operations.md).

A webhook that does not answer 2xx raises `AlertDeliveryError`; the caller (a sensor) then
fails its tick without advancing its cursor, so the same incident is posted at the next tick.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from . import events
from .ledger import Ledger

ALERT_ACTION = events.AlertSent.ACTION
WEBHOOK_ENV = "AISG_ALERT_WEBHOOK_URL"
UI_URL_ENV = "AISG_DAGSTER_UI_URL"
COLORS = {"critical": "#8b0000", "error": "danger", "warning": "warning", "info": "good"}


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept the alert (it will be posted again)."""


@dataclass(frozen=True)
class Alert:
    incident: str  # stable key: one alert per incident
    title: str
    text: str
    severity: str = "error"  # critical | error | warning | info
    fields: Mapping[str, str] | None = None
    kind: str = ""  # run_failure | check_failure | health | ...

    def payload(self) -> dict:
        """Slack-compatible JSON (incoming webhooks; also what Mattermost and Teams' Slack shim accept)."""
        fields = [{"title": k, "value": str(v), "short": len(str(v)) < 40} for k, v in (self.fields or {}).items()]
        return {
            "text": f"[{self.severity.upper()}] {self.title}",
            "attachments": [{
                "color": COLORS.get(self.severity, "danger"),
                "title": self.title,
                "text": self.text,
                "fields": fields,
                "footer": f"aisg_pipelines incident {self.incident}",
            }],
        }


def webhook_url() -> str:
    return os.environ.get(WEBHOOK_ENV, "").strip()


def ui_link(path: str) -> str:
    """A link into the Dagster UI when AISG_DAGSTER_UI_URL is set ('' otherwise)."""
    base = os.environ.get(UI_URL_ENV, "").strip().rstrip("/")
    return f"{base}/{path.lstrip('/')}" if base else ""


def alerted_incidents(ledger: Ledger) -> set[str]:
    return {events.AlertSent.from_payload(e.details).incident for e in ledger.events(ALERT_ACTION)}


def post(url: str, payload: dict, timeout: float = 10.0) -> int:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - operator-configured URL
            return resp.status
    except urllib.error.HTTPError as exc:
        raise AlertDeliveryError(f"alert webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise AlertDeliveryError(f"alert webhook unreachable: {exc}") from None


def send_alert(ledger: Ledger, alert: Alert, *, url: str | None = None, actor: str = "alerts") -> bool:
    """Post `alert` unless its incident was already alerted; record it in the ledger.

    Returns True when something new was sent (or recorded, without a webhook), False for an
    incident already alerted. Raises AlertDeliveryError when the webhook refuses it (nothing is
    recorded then, so a later attempt posts it)."""
    if alert.incident in alerted_incidents(ledger):
        return False
    url = webhook_url() if url is None else url
    status = post(url, alert.payload()) if url else None
    events.record(ledger, events.AlertSent(
        incident=alert.incident, kind=alert.kind, severity=alert.severity, title=alert.title[:300],
        delivered=bool(url), http_status=status, channel="webhook" if url else "none",
    ), actor=actor)
    return True
