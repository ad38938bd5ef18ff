"""A STUDIO_BACKUP_HOOK for the backup tests: the Studio changing between the backup's phases.

    python -m tests.deploy.backup_hook PHASE      # settings from the environment, as the app reads them

BACKUP_SCENARIO picks what happens:
- `busy`: after the object export, a dataset is uploaded (object, then row) and another deleted (row,
  then objects), as users do while a nightly backup runs;
- `vanish`: after the object export a dataset is uploaded, and after the dump its object is lost.
"""
from __future__ import annotations

import io
import os
import sys

from app.datasets import service
from app.db import database
from app.factory import create_app
from app.models import Dataset, User

ADDED_NAME = "added during the backup"
DELETED_NAME = "chat"


def add_dataset(store) -> None:
    """Store an object and then the row that points to it, as an upload does."""
    key = "datasets/added-during-backup/original"
    store.put(key, io.BytesIO(b'{"text": "late"}\n'))
    owner = User.select().order_by(User.id).first()
    Dataset.create(owner=owner, name=ADDED_NAME, status="invalid", object_key=key, size_bytes=17)


def main(phase: str) -> None:
    """Apply the scenario's change for this phase."""
    app = create_app()
    scenario = os.environ["BACKUP_SCENARIO"]
    with app.app_context(), database.connection_context():
        store = app.extensions["store"]
        if phase == "objects":
            add_dataset(store)
            if scenario == "busy":
                service.delete_dataset(Dataset.get(Dataset.name == DELETED_NAME), store)
        elif phase == "database" and scenario == "vanish":
            store.delete(Dataset.get(Dataset.name == ADDED_NAME).object_key)


if __name__ == "__main__":
    main(sys.argv[1])
