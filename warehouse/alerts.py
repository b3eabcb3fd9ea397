"""Alerts for the people who run the pipeline: a line appended to the alerts log, and a
Slack-compatible JSON message (``{"text": ...}``) posted to a webhook when one is set."""

from __future__ import annotations

import json
import urllib.request

from warehouse.settings import Settings


def alert(settings: Settings, text: str) -> None:
    """Record ``text``; the log line is written first so a webhook outage loses nothing."""
    settings.alerts_log.parent.mkdir(parents=True, exist_ok=True)
    with settings.alerts_log.open("a", encoding="utf-8") as log:
        log.write(text.replace("\n", " ") + "\n")
    if settings.alert_webhook:
        post(settings.alert_webhook, {"text": text})


def post(url: str, payload: dict, timeout_s: float = 10.0) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()
