"""The webhooks settings page: endpoints, their secrets (shown once), the delivery log with redelivery."""
