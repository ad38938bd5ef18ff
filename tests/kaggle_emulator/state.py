"""What the emulated Kaggle holds (accounts, blobs, datasets, models, kernels and their sessions) and its RPCs.

Each RPC takes the caller's user name and the kagglesdk request object, and returns the kagglesdk response
object (or a plain dict where kagglesdk's serializer would send the wrong thing); refusals raise ApiError.
Kaggle's own rules are enforced, so that a backend breaking one fails its tests.
"""
from __future__ import annotations

import itertools
import json
import re
import shutil
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kagglesdk.blobs.types.blob_api_service import ApiStartBlobUploadResponse
from kagglesdk.datasets.types.dataset_api_service import (
    ApiCreateDatasetResponse,
    ApiDataset,
    ApiDeleteDatasetResponse,
    ApiGetDatasetMetadataResponse,
    ApiGetDatasetStatusResponse,
)
from kagglesdk.datasets.types.dataset_enums import DatabundleVersionStatus
from kagglesdk.datasets.types.dataset_types import DatasetInfo, SettingsLicense
from kagglesdk.kernels.types.kernels_api_service import (
    ApiCancelKernelSessionResponse,
    ApiGetKernelSessionStatusResponse,
    ApiKernelSessionOutputFile,
    ApiListKernelSessionOutputResponse,
    ApiSaveKernelResponse,
)
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus
from kagglesdk.models.types.model_api_service import ApiModelInstance
from kagglesdk.security.types.oauth_service import IntrospectTokenResponse
from slugify import slugify

from tests.kaggle_emulator.sessions import Session

MAX_GPU_SESSIONS = 2  # Kaggle runs at most two GPU batch sessions of an account at once
LICENSES = {"CC0-1.0", "CC-BY-SA-4.0", "GPL-2.0", "ODbL-1.0", "CC-BY-NC-SA-4.0", "unknown", "DbCL-1.0",
            "CC-BY-SA-3.0", "copyright-authors", "other", "reddit-api", "world-bank", "CC-BY-4.0"}
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
PUBLIC_HOST = "http://localhost"  # the URLs handed out; the client reaches them through HTTP_PROXY


class ApiError(Exception):
    """A refusal, answered as Kaggle does: the HTTP status and a JSON body {"code", "message"}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class DatasetVersion:
    """One version of a dataset: its files (name → path on disk) and description."""

    number: int
    files: dict[str, Path]
    description: str
    notes: str
    status: DatabundleVersionStatus


@dataclass
class Dataset:
    """A dataset and its versions, oldest first."""

    owner: str
    slug: str
    title: str
    license_name: str
    is_private: bool
    versions: list[DatasetVersion] = field(default_factory=list)


@dataclass
class Kernel:
    """A kernel: the metadata of its latest push and one session per version."""

    owner: str
    slug: str
    title: str
    metadata: dict
    sessions: list[Session] = field(default_factory=list)


class KaggleState:
    """Everything the emulated Kaggle holds, guarded by one condition that session changes notify."""

    def __init__(self, root: Path, accounts: dict[str, str]):
        self.root = root
        self.accounts = dict(accounts)
        self.tokens: dict[str, str] = {}
        self.changed = threading.Condition()
        self.blobs: dict[str, Path] = {}
        self.datasets: dict[tuple[str, str], Dataset] = {}
        self.models: dict[tuple[str, str, str, str], tuple[int, Path]] = {}
        self.kernels: dict[tuple[str, str], Kernel] = {}
        self.sessions: dict[int, Session] = {}
        self.pushes: Counter[str] = Counter()
        self.hold_queue = self.hold_datasets = False
        self.peak_running = 0
        self.peak_by_account: Counter[str] = Counter()
        self.session_seconds: float | None = None  # Kaggle's limit on a session's run time (12 hours)
        self.quotas: dict[str, tuple[timedelta, timedelta]] = {}
        self.quota = (timedelta(0), timedelta(hours=30))
        self._ids = itertools.count(1001)

    # -- authentication -----------------------------------------------------------------------------------------

    def introspect_token(self, user: str | None, request) -> IntrospectTokenResponse:
        """Whether an access token is valid, and whose."""
        response = IntrospectTokenResponse()
        username = self.tokens.get(request.token)
        response.active = username is not None
        if username:
            response.username = username
        return response

    # -- blobs and datasets -------------------------------------------------------------------------------------

    def start_blob_upload(self, user: str, request) -> ApiStartBlobUploadResponse:
        """A token and the URL to PUT the file's bytes to."""
        token = uuid.uuid4().hex
        self.blobs[token] = self.root / "blobs" / token / request.name
        response = ApiStartBlobUploadResponse()
        response.token, response.create_url = token, f"{PUBLIC_HOST}/emulator/blobs/{token}"
        return response

    def create_dataset(self, user: str, request) -> ApiCreateDatasetResponse:
        """A new dataset, its first version made of the uploaded blobs."""
        self._check_owner(user, request.owner_slug)
        problem = self._dataset_problem(request)
        if problem:
            return _create_response(error=problem)
        dataset = Dataset(user, request.slug, request.title, request.license_name, request.is_private)
        self.datasets[(user, request.slug)] = dataset
        self._add_version(dataset, request.files, request.description or "", "")
        return _create_response(ref=f"{user}/{request.slug}")

    def _dataset_problem(self, request) -> str | None:
        """Why Kaggle would refuse to create this dataset."""
        if (request.owner_slug, request.slug) in self.datasets:
            return f'The requested slug "{request.slug}" is already in use by a dataset.'
        if not SLUG.match(request.slug) or not 6 <= len(request.slug) <= 50:
            return "The dataset slug must be 6 to 50 lower-case letters, digits and dashes."
        if not 6 <= len(request.title or "") <= 50:
            return "The dataset title must be between 6 and 50 characters."
        if request.license_name not in LICENSES:
            return f"Unknown license {request.license_name!r}."
        if not request.files:
            return "A dataset needs at least one file."
        return None

    def create_dataset_version(self, user: str, request) -> ApiCreateDatasetResponse:
        """A new version of an existing dataset."""
        dataset = self._dataset(user, request.owner_slug, request.dataset_slug)
        if not request.body.files:
            return _create_response(error="A dataset version needs at least one file.")
        self._add_version(dataset, request.body.files, request.body.description or "", request.body.version_notes)
        return _create_response(ref=f"{dataset.owner}/{dataset.slug}")

    def _add_version(self, dataset: Dataset, new_files, description: str, notes: str) -> None:
        """Store a version whose files are the blobs the tokens name."""
        missing = [file.token for file in new_files if not self.blobs.get(file.token, Path()).is_file()]
        if missing:
            raise ApiError(400, f"Unknown or incomplete blob upload: {missing[0]}")
        files = {self.blobs[file.token].name: self.blobs[file.token] for file in new_files}
        status = DatabundleVersionStatus.BLOBS_RECEIVED if self.hold_datasets else DatabundleVersionStatus.READY
        dataset.versions.append(DatasetVersion(len(dataset.versions) + 1, files, description, notes, status))

    def get_dataset_status(self, user: str, request):
        """The processing status of the dataset's latest version."""
        response = ApiGetDatasetStatusResponse()
        response.status = self._dataset(user, request.owner_slug, request.dataset_slug).versions[-1].status
        return response

    def get_dataset(self, user: str, request):
        """The dataset, with its current version number."""
        dataset = self._dataset(user, request.owner_slug, request.dataset_slug)
        response = ApiDataset()
        response.ref, response.title = f"{dataset.owner}/{dataset.slug}", dataset.title
        response.current_version_number, response.is_private = len(dataset.versions), dataset.is_private
        return response

    def get_dataset_metadata(self, user: str, request) -> ApiGetDatasetMetadataResponse:
        """Title, description (the latest version's), license and privacy."""
        dataset = self._dataset(user, request.owner_slug, request.dataset_slug)
        info, license_ = DatasetInfo(), SettingsLicense()
        license_.name = dataset.license_name
        info.dataset_slug, info.owner_user, info.title = dataset.slug, dataset.owner, dataset.title
        info.description, info.is_private, info.licenses = dataset.versions[-1].description, dataset.is_private, [
            license_]
        response = ApiGetDatasetMetadataResponse()
        response.info = info
        return response

    def delete_dataset(self, user: str, request) -> ApiDeleteDatasetResponse:
        """Delete a dataset of the caller's own, every version."""
        self._check_owner(user, request.owner_slug)
        dataset = self._dataset(user, request.owner_slug, request.dataset_slug)
        del self.datasets[(dataset.owner, dataset.slug)]
        return ApiDeleteDatasetResponse()

    def _dataset(self, user: str, owner: str, slug: str) -> Dataset:
        """The dataset, if the caller may see it."""
        dataset = self.datasets.get((owner, slug))
        if dataset is None or (dataset.is_private and dataset.owner != user):
            raise ApiError(404, f"Dataset {owner}/{slug} not found")
        return dataset

    # -- models -------------------------------------------------------------------------------------------------

    def get_model_instance(self, user: str, request) -> ApiModelInstance:
        """A registered model variation and its latest version."""
        framework = request.framework.name.removeprefix("MODEL_FRAMEWORK_").replace("_", "").lower()
        key = (request.owner_slug, request.model_slug, framework, request.instance_slug)
        if key not in self.models:
            raise ApiError(404, f"Model instance {'/'.join(key)} not found")
        response = ApiModelInstance()
        response.slug, response.version_number = request.instance_slug, self.models[key][0]
        return response

    # -- kernels ------------------------------------------------------------------------------------------------

    def save_kernel(self, user: str, request) -> ApiSaveKernelResponse:
        """Save a new version of a kernel and queue its session (Kaggle derives the slug from the title)."""
        owner, _, slug = (request.slug or "").partition("/")
        self._check_owner(user, owner)
        problem = self._kernel_problem(request, slug)
        if problem:
            return _save_response(error=problem)
        invalid = _save_response()
        invalid.invalid_dataset_sources = [s for s in request.dataset_data_sources if not self._has_dataset(user, s)]
        invalid.invalid_model_sources = [s for s in request.model_data_sources if not self._has_model(s)]
        invalid.invalid_kernel_sources = [s for s in request.kernel_data_sources if not self._has_output(user, s)]
        if invalid.invalid_dataset_sources or invalid.invalid_model_sources or invalid.invalid_kernel_sources:
            return invalid
        kernel = self.kernels.get((owner, slug)) or Kernel(owner, slug, request.new_title, {})
        session = self._new_session(kernel, request)
        kernel.title, kernel.metadata = request.new_title, _kernel_metadata(request)
        self.kernels[(owner, slug)] = kernel
        self.pushes[slug] += 1
        self.start_queued()
        return _save_response(ref=f"/code/{owner}/{slug}", version=session.version)

    def _kernel_problem(self, request, slug: str) -> str | None:
        """Why Kaggle would refuse this kernel."""
        if len(request.new_title or "") < 5:
            return "The kernel title must be at least 5 characters."
        if slugify(request.new_title) != slug:
            return f"The kernel slug {slug!r} is not the one its title gives ({slugify(request.new_title)!r})."
        if request.language != "python" or request.kernel_type not in ("script", "notebook"):
            return "Only python scripts and notebooks are emulated."
        return None

    def _new_session(self, kernel: Kernel, request) -> Session:
        """A queued session of a new kernel version, its inputs attached."""
        session_id = next(self._ids)
        session = Session(session_id, len(kernel.sessions) + 1, self.root / "sessions" / str(session_id),
                          request.text, request.enable_gpu, self.hold_queue, self.changed, owner=kernel.owner,
                          time_limit=self.session_seconds)
        for source in request.dataset_data_sources:
            owner, slug = source.split("/")[:2]
            for name, path in self.datasets[(owner, slug)].versions[-1].files.items():
                _copy(path, session.input_dir / slug / name)
        for source in request.kernel_data_sources:  # a kernel version's output, under the kernel's slug
            output = self._output_session(source)
            for name in output.outputs():
                _copy(output.working_dir / name, session.input_dir / source.split("/")[1] / name)
        for source in request.model_data_sources:
            owner, model, framework, variation, version = source.split("/")
            shutil.copytree(self.models[(owner, model, framework, variation)][1],
                            session.input_dir / model / framework / variation / version)
        kernel.sessions.append(session)
        self.sessions[session_id] = session
        return session

    def start_queued(self) -> None:
        """Start queued sessions in order while their account has a GPU slot free and the queue is not held."""
        for session in self.sessions.values():
            running = [s for s in self.sessions.values() if s.gpu and s.status == KernelWorkerStatus.RUNNING]
            if session.status != KernelWorkerStatus.QUEUED or session.held:
                continue
            own = [s for s in running if s.owner == session.owner]
            if session.gpu and len(own) >= MAX_GPU_SESSIONS:
                continue
            session.start()
            self.peak_running = max(self.peak_running, len(running) + session.gpu)
            self.peak_by_account[session.owner] = max(self.peak_by_account[session.owner], len(own) + session.gpu)

    def get_kernel_session_status(self, user: str, request) -> ApiGetKernelSessionStatusResponse:
        """The state of the kernel version's session."""
        session = self.session_of(user, request.user_name, request.kernel_slug, request.version_label)
        response = ApiGetKernelSessionStatusResponse()
        response.status, response.failure_message = session.status, session.failure_message or None
        return response

    def list_kernel_session_output(self, user: str, request) -> ApiListKernelSessionOutputResponse:
        """A page of the session's output files with download URLs, and its log."""
        session = self.session_of(user, request.user_name, request.kernel_slug, request.version_label)
        names = session.outputs() if session.final else []
        start = int(request.page_token or 0)
        page = names[start:start + (request.page_size or 20)]
        response = ApiListKernelSessionOutputResponse()
        response.files = [_output_file(session.id, name) for name in page]
        response.log = json.dumps(session.events) if session.final else None
        response.next_page_token = str(start + len(page)) if start + len(page) < len(names) else None
        return response

    def cancel_kernel_session(self, user: str, request) -> ApiCancelKernelSessionResponse:
        """Stop a session by its id (an id Kaggle's API never hands out; the control API does)."""
        session = self.sessions.get(request.kernel_session_id)
        response = ApiCancelKernelSessionResponse()
        if session is None or not self._owns_session(user, session):
            raise ApiError(404, f"Session {request.kernel_session_id} not found")
        if not session.final:
            session.stop(KernelWorkerStatus.CANCEL_ACKNOWLEDGED)
        return response

    def get_accelerator_quota_statistics(self, user: str, request) -> dict:
        """This week's quota, written by hand: kagglesdk's serializer drops the days of a duration."""
        used, allowed = self.quotas.get(user, self.quota)
        refresh = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(days=3)
        return {"quotaRefreshTime": refresh.isoformat() + "Z",
                "gpuQuota": {"timeUsed": f"{int(used.total_seconds())}s",
                             "totalTimeAllowed": f"{int(allowed.total_seconds())}s"}}

    def session_of(self, user: str, owner: str, slug: str, version_label: str | None) -> Session:
        """The session of a kernel version (the latest without a label); 403 as Kaggle answers for a stranger's."""
        kernel = self.kernels.get((owner, slug))
        if kernel is None or owner != user:
            raise ApiError(403, "Permission 'kernels.get' was denied")
        if not version_label:
            return kernel.sessions[-1]
        number = int(version_label.removeprefix("v"))
        if not 1 <= number <= len(kernel.sessions):
            raise ApiError(404, f"Kernel {owner}/{slug} has no version {number}")
        return kernel.sessions[number - 1]

    def _owns_session(self, user: str, session: Session) -> bool:
        """Whether the session belongs to one of the user's kernels."""
        return any(session in kernel.sessions for kernel in self.kernels.values() if kernel.owner == user)

    def _has_dataset(self, user: str, source: str) -> bool:
        """Whether owner/slug names a dataset the user may attach."""
        owner, _, slug = source.partition("/")
        dataset = self.datasets.get((owner, slug.split("/")[0]))
        return dataset is not None and (not dataset.is_private or dataset.owner == user)

    def _output_session(self, source: str) -> Session:
        """The session of owner/slug/version (the latest without a version) whose output is attached."""
        owner, slug, *version = source.split("/")
        return self.session_of(owner, owner, slug, version[0] if version else None)

    def _has_output(self, user: str, source: str) -> bool:
        """Whether owner/slug[/version] names a finished kernel version of the user's with an output."""
        try:
            session = self._output_session(source)
        except ApiError:
            return False
        return source.split("/")[0] == user and session.status == KernelWorkerStatus.COMPLETE

    def _has_model(self, source: str) -> bool:
        """Whether owner/model/framework/variation/version names a registered model version."""
        parts = source.split("/")
        found = self.models.get(tuple(parts[:4]))
        return len(parts) == 5 and found is not None and str(found[0]) == parts[4]

    def _check_owner(self, user: str, owner: str) -> None:
        """Refuse to write under another account."""
        if owner != user:
            raise ApiError(403, f"{user} may not write as {owner}")


def _create_response(ref: str = "", error: str = "") -> ApiCreateDatasetResponse:
    """CreateDataset's answer: a ref, or a refusal in `error` (HTTP 200 all the same, as Kaggle does)."""
    response = ApiCreateDatasetResponse()
    response.ref, response.status = ref, "error" if error else "ok"
    response.error = error
    return response


def _save_response(ref: str = "", version: int = 0, error: str = "") -> ApiSaveKernelResponse:
    """SaveKernel's answer: a ref and version, or a refusal in `error` (HTTP 200 all the same)."""
    response = ApiSaveKernelResponse()
    response.ref, response.url, response.version_number, response.error = ref, f"{PUBLIC_HOST}{ref}", version, error
    return response


def _kernel_metadata(request) -> dict:
    """What a test may check about a push."""
    return {"is_private": request.is_private, "enable_gpu": request.enable_gpu, "enable_tpu": request.enable_tpu,
            "enable_internet": request.enable_internet, "machine_shape": request.machine_shape,
            "dataset_sources": list(request.dataset_data_sources), "model_sources": list(request.model_data_sources),
            "kernel_sources": list(request.kernel_data_sources),
            "kernel_type": request.kernel_type, "language": request.language, "text": request.text}


def _output_file(session_id: int, name: str) -> ApiKernelSessionOutputFile:
    """An output file and the URL it downloads from."""
    output = ApiKernelSessionOutputFile()
    output.file_name, output.url = name, f"{PUBLIC_HOST}/emulator/outputs/{session_id}/{name}"
    return output


def _copy(source: Path, target: Path) -> None:
    """Copy a file, creating the target's folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
