"""The webhooks domain: endpoints, Standard Webhooks signing, deliveries with retries; no Flask here."""
