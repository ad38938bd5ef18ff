"""What the job steps need from the running app, gathered once so the steps themselves stay Flask-free."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from rq import Queue

from app.jobs import backends
from app.jobs.backends import Backend
from app.settings import Settings
from app.storage import ObjectStore


@dataclass
class JobContext:
    """Settings, storage, Redis and the training backends of one process."""

    settings: Settings
    store: ObjectStore
    redis: Redis
    _backends: dict = field(default_factory=dict)

    @classmethod
    def from_app(cls, app) -> JobContext:
        """The context of a Flask app (built by create_app)."""
        return cls(app.extensions["settings"], app.extensions["store"], app.extensions["redis"])

    def queue(self, name: str) -> Queue:
        """The RQ queue called name."""
        return Queue(name, connection=self.redis)

    def backend(self, name: str) -> Backend:
        """The backend called name, built on first use."""
        if name not in self._backends:
            self._backends[name] = backends.get(name)(self.settings, self.redis)
        return self._backends[name]

    def enabled_backends(self) -> dict[str, Backend]:
        """The backends users may choose (TRAINING_BACKENDS), by name, in the configured order."""
        return {name: self.backend(name) for name in self.settings.backend_names}

    def runs_dir(self, job_id: int) -> Path:
        """The local folder of one job's inputs and outputs."""
        return self.settings.data_dir / "runs" / str(job_id)
