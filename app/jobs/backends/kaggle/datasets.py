"""A job's private Kaggle dataset: created once, a new version only when the content changed (its hash is kept in
the description), and waited on until Kaggle has processed it."""
from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from pathlib import Path

from requests import HTTPError

from app.jobs.backends import BackendError, TrainingInputs
from app.jobs.backends.kaggle import kernels

log = logging.getLogger(__name__)

CONTENT_HASH = re.compile(r"sha256 ([0-9a-f]{64})")
NOT_FOUND = (403, 404)  # Kaggle answers 403 ("permission denied") for a dataset that does not exist


def ensure_dataset(api, inputs: TrainingInputs, dataset: str) -> None:
    """Upload the data unless Kaggle already holds this content (its hash is in the dataset's description)."""
    status = dataset_status(api, dataset)
    if status is None:
        upload(api, inputs, dataset, new=True)
    elif dataset_sha256(api, dataset) != inputs.dataset_sha256:
        upload(api, inputs, dataset, new=False)
    else:
        log.info("Kaggle dataset %s already holds %s", dataset, inputs.dataset_sha256)


def dataset_status(api, dataset: str) -> dict | None:
    """{"status", "current_version_number"} of a dataset, or None when it does not exist."""
    try:
        return json.loads(api.dataset_status(dataset, format="json(status,current_version_number)"))
    except HTTPError as error:
        if error.response is not None and error.response.status_code in NOT_FOUND:
            return None
        raise


def dataset_sha256(api, dataset: str) -> str | None:
    """The content hash recorded in the dataset's description."""
    with tempfile.TemporaryDirectory() as folder:
        metadata = json.loads(Path(api.dataset_metadata(dataset, folder)).read_text())
    info = metadata.get("info", metadata)  # the client writes the whole response, its info inside
    found = CONTENT_HASH.search(info.get("description") or "")
    return found.group(1) if found else None


def upload(api, inputs: TrainingInputs, dataset: str, new: bool) -> None:
    """Upload the data files as a new private dataset or a new version; Kaggle's refusal is permanent."""
    with tempfile.TemporaryDirectory() as folder:
        stage_dataset(inputs, dataset, Path(folder))
        if new:
            response = api.dataset_create_new(folder, public=False, quiet=True)
        else:
            response = api.dataset_create_version(folder, f"sha256 {inputs.dataset_sha256}", quiet=True)
    if response.error and new and dataset_status(api, dataset) is not None:
        # Created meanwhile, by an attempt whose answer was lost: check its content again.
        raise BackendError(f"Kaggle dataset {dataset} appeared meanwhile", transient=True)
    if response.error:
        raise BackendError(f"Kaggle refused the dataset {dataset}: {response.error}")
    log.info("uploaded %s to Kaggle dataset %s", inputs.dataset_sha256, dataset)


def stage_dataset(inputs: TrainingInputs, dataset: str, folder: Path) -> None:
    """The folder the client uploads: links to the data files and dataset-metadata.json."""
    for path in sorted(inputs.data_dir.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            (folder / path.name).symlink_to(path.resolve())
    (folder / "dataset-metadata.json").write_text(json.dumps(kernels.dataset_metadata(inputs, dataset)))


def wait_until_ready(api, dataset: str, patience, retrying) -> int:
    """The dataset's version once Kaggle has processed it; transient while it still works on it."""
    deadline = time.monotonic() + patience.dataset_ready_seconds
    while True:
        status = retrying(lambda: dataset_status(api, dataset)) or {}
        if status.get("status") == "ready":
            return int(status["current_version_number"])
        if status.get("status") == "failed":
            raise BackendError(f"Kaggle could not process the dataset {dataset}; see it on kaggle.com.")
        if time.monotonic() >= deadline:
            raise BackendError(f"Kaggle is still processing the dataset {dataset}", transient=True)
        time.sleep(patience.dataset_check_seconds)
