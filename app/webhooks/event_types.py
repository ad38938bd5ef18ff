"""The events an endpoint may subscribe to, by name: OpenAI's fine-tuning events and the Studio's own."""
from __future__ import annotations

from dataclasses import dataclass

from app.jobs import states


@dataclass(frozen=True)
class EventType:
    """One kind of event: its name, what it tells, and the object it is about (job or dataset)."""

    name: str
    description: str
    subject: str


_TYPES: dict[str, EventType] = {}


def register(event_type: EventType) -> EventType:
    """Add an event type to the registry."""
    _TYPES[event_type.name] = event_type
    return event_type


def get(name: str) -> EventType | None:
    """The event type called name, None when there is none."""
    return _TYPES.get(name)


def names() -> list[str]:
    """Every event type's name, in registration order."""
    return list(_TYPES)


for _name, _text, _subject in (
        ("fine_tuning.job.succeeded", "a fine-tuning job succeeded", "job"),
        ("fine_tuning.job.failed", "a fine-tuning job failed", "job"),
        ("fine_tuning.job.cancelled", "a fine-tuning job was cancelled", "job"),
        ("job.running", "a job started training", "job"),
        ("dataset.ready", "a dataset passed validation", "dataset"),
        ("dataset.invalid", "a dataset failed validation", "dataset")):
    register(EventType(_name, _text, _subject))

# The event a job's move to a status announces.
JOB_STATUS_EVENTS = {states.SUCCEEDED: "fine_tuning.job.succeeded", states.FAILED: "fine_tuning.job.failed",
                     states.CANCELLED: "fine_tuning.job.cancelled", states.RUNNING: "job.running"}
DATASET_STATUS_EVENTS = {"ready": "dataset.ready", "invalid": "dataset.invalid"}
