"""The job domain: states, the service, orchestration, recovery and the training backends; no Flask here."""
