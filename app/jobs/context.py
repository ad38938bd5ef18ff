"""What the job steps need from the running app, gathered once so the steps themselves stay Flask-free."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from rq import Queue

from app.jobs.backends import RemoteBackend
from app.settings import Settings
from app.storage import ObjectStore


@dataclass
class JobContext:
    """Settings, storage, Redis and the remote backends of one process."""

    settings: Settings
    store: ObjectStore
    redis: Redis
    _remotes: dict = field(default_factory=dict)

    @classmethod
    def from_app(cls, app) -> JobContext:
        """The context of a Flask app (built by create_app)."""
        return cls(app.extensions["settings"], app.extensions["store"], app.extensions["redis"])

    def queue(self, name: str) -> Queue:
        """The RQ queue called name."""
        return Queue(name, connection=self.redis)

    def remote(self, name: str) -> RemoteBackend:
        """The remote backend called name, built on first use."""
        if name not in self._remotes:
            from app.jobs.kaggle import KaggleBackend

            self._remotes[name] = KaggleBackend(self.settings)
        return self._remotes[name]

    def runs_dir(self, job_id: int) -> Path:
        """The local folder of one job's inputs and outputs."""
        return self.settings.data_dir / "runs" / str(job_id)
