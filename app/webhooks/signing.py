"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC>`."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from app.webhooks.keys import secret_key_bytes


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The v1 signature of one message: HMAC-SHA256 of `id.timestamp.body` under the secret."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(secret_key_bytes(secret), signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, message_id: str, body: str, now: int | None = None) -> dict[str, str]:
    """The headers a delivery is sent with, signed at this moment."""
    timestamp = int(time.time()) if now is None else now
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, message_id, timestamp, body),
            "content-type": "application/json", "user-agent": "FinetuneStudio-Webhooks/1"}
