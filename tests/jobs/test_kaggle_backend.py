"""The Kaggle backend, with the real kaggle client, against the emulator that really runs the pushed kernels."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from kagglesdk import KaggleClient
from kagglesdk.kernels.types.kernels_api_service import ApiCancelKernelSessionRequest
from slugify import slugify

from app.jobs.backends import BackendError, PollResult
from app.jobs.backends.kaggle import bootstrap
from app.jobs.backends.kaggle.backend import CANCEL_MESSAGE, KaggleBackend
from app.jobs.backends.kaggle.kernels import dataset_slug, kernel_script, kernel_slug, kernel_title
from tests.kaggle_emulator import KaggleEmulator
from tests.support.kaggle import (
    KAGGLE_KEY,
    KAGGLE_USER,
    TINY_CONFIG,
    kaggle_backend_for,
    point_client_at,
    training_inputs,
)
from tests.support.processes import PROJECT_ROOT
from tests.support.waiting import wait_until
from trainer.bundle import bundle_bytes
from trainer.protocol import parse_progress_line

FINAL = ("complete", "error", "cancelled")


def submitted(backend: KaggleBackend, inputs) -> dict:
    """The ref of a job whose dataset is up and whose kernel is pushed."""
    ref = backend.prepare(inputs, {})
    return {**ref, **backend.submit(inputs, ref)}


def slug_of(ref: dict) -> str:
    """The kernel slug in a ref."""
    return ref["kernel"].split("/")[1]


def poll_to_the_end(backend: KaggleBackend, ref: dict, timeout: float = 180) -> list[PollResult]:
    """Poll as the Studio does, merging each answer's ref updates, until the run is over; every answer."""
    results = []

    def finished() -> bool:
        results.append(backend.poll(ref))
        ref.update(results[-1].ref)
        return results[-1].state in FINAL

    wait_until(finished, timeout, "the Kaggle kernel to finish")
    return results


# --- configuration and names ----------------------------------------------------------------------------------


def test_configuration_problems_name_the_missing_credentials(tmp_path):
    without = kaggle_backend_for(tmp_path, kaggle_username="", kaggle_key="")
    assert any("KAGGLE_USERNAME" in problem for problem in without.configuration_problems())
    assert kaggle_backend_for(tmp_path).configuration_problems() == []
    assert kaggle_backend_for(tmp_path, kaggle_api_token="token").configuration_problems() == []


def test_names_follow_kaggles_rules_and_depend_only_on_the_job(make_inputs):
    inputs = make_inputs()
    title = kernel_title(inputs)
    assert len(title) >= 5 and kernel_slug(title) == slugify(title)
    assert 6 <= len(dataset_slug(inputs.installation_id, inputs.job_id)) <= 50
    assert kernel_title(make_inputs()) == title
    assert kernel_title(make_inputs(config={**TINY_CONFIG, "method": "full"})) != title
    assert kernel_title(inputs, run=2) != title


# --- prepare: the dataset -------------------------------------------------------------------------------------


def test_prepare_uploads_a_private_dataset_with_one_license(kaggle_backend, kaggle_client_env, make_inputs):
    inputs = make_inputs()
    ref = kaggle_backend.prepare(inputs, {})
    assert ref == {"dataset": f"{KAGGLE_USER}/{dataset_slug('studio', 7)}", "dataset_sha256": inputs.dataset_sha256,
                   "dataset_version": 1, "account": KAGGLE_USER, "credentials_of": None}
    dataset = kaggle_client_env.dataset(dataset_slug("studio", 7))
    assert dataset["is_private"] and dataset["license"] == "unknown"
    assert 6 <= len(dataset["title"]) <= 50
    assert [version["files"] for version in dataset["versions"]] == [["train.jsonl"]]


def test_prepare_reuses_the_version_while_the_content_is_unchanged(kaggle_backend, kaggle_client_env, make_inputs):
    inputs = make_inputs()
    first = kaggle_backend.prepare(inputs, {})
    assert kaggle_backend.prepare(inputs, {}) == first  # the ref was lost: Kaggle's state says it is there
    calls = kaggle_client_env.calls("GetDatasetStatus")
    assert kaggle_backend.prepare(inputs, first) == {}
    assert kaggle_client_env.calls("GetDatasetStatus") == calls
    assert len(kaggle_client_env.dataset(dataset_slug("studio", 7))["versions"]) == 1
    assert kaggle_client_env.calls("CreateDataset") == 1 and kaggle_client_env.calls("CreateDatasetVersion") == 0


def test_prepare_makes_a_new_version_when_the_content_changes(kaggle_backend, kaggle_client_env, make_inputs):
    first = kaggle_backend.prepare(make_inputs(), {})
    changed = make_inputs(records=training_records_changed())
    second = kaggle_backend.prepare(changed, first)
    assert second["dataset"] == first["dataset"] and second["dataset_version"] == 2
    versions = kaggle_client_env.dataset(dataset_slug("studio", 7))["versions"]
    assert changed.dataset_sha256 in versions[1]["description"]


def training_records_changed() -> list[dict]:
    """Records other than the default ones."""
    return [{"messages": [{"role": "user", "content": "new"}, {"role": "assistant", "content": "data"}]}] * 8


def test_prepare_is_transient_while_kaggle_processes_the_dataset(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_datasets()
    inputs = make_inputs()
    with pytest.raises(BackendError) as raised:
        kaggle_backend.prepare(inputs, {})
    assert raised.value.transient and "processing" in raised.value.message
    kaggle_client_env.release_datasets()
    assert kaggle_backend.prepare(inputs, {})["dataset_version"] == 1
    assert len(kaggle_client_env.dataset(dataset_slug("studio", 7))["versions"]) == 1


# --- submit: the kernel ---------------------------------------------------------------------------------------


def test_submit_pushes_a_private_gpu_script_kernel(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_queue()
    inputs = make_inputs()
    ref = submitted(kaggle_backend, inputs)
    kernel = kaggle_client_env.kernel(slug_of(ref))
    assert kernel["title"] == kernel_title(inputs) and kernel["state"] == "queued"
    assert kernel["metadata"] | {"text": None} == {
        "is_private": True, "enable_gpu": True, "enable_tpu": False, "enable_internet": False,
        "machine_shape": "NvidiaTeslaT4", "dataset_sources": [ref["dataset"]], "model_sources": [],
        "kernel_sources": [], "kernel_type": "script", "language": "python", "text": None}
    assert ref["kernel_version"] == 1 and kaggle_client_env.pushes(slug_of(ref)) == 1


@pytest.mark.parametrize("model_source, internet, sources", [
    ("hub", True, []),
    ("kaggle:alice/tiny-llama/transformers/tiny", False, ["alice/tiny-llama/transformers/tiny/3"]),
    ("kaggle:alice/tiny-llama/transformers/tiny/3", False, ["alice/tiny-llama/transformers/tiny/3"]),
])
def test_the_model_source_decides_internet_and_model_sources(kaggle_backend, kaggle_client_env, make_inputs,
                                                             tmp_path, model_source, internet, sources):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    kaggle_client_env.add_model("alice/tiny-llama/transformers/tiny", 3, tmp_path / "model")
    kaggle_client_env.hold_queue()
    ref = submitted(kaggle_backend, make_inputs(model_source=model_source))
    metadata = kaggle_client_env.kernel(slug_of(ref))["metadata"]
    assert (metadata["enable_internet"], metadata["model_sources"]) == (internet, sources)


def test_submit_twice_pushes_once(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_queue()
    inputs = make_inputs()
    ref = submitted(kaggle_backend, inputs)
    assert kaggle_backend.submit(inputs, ref) == {}
    assert kaggle_client_env.pushes(slug_of(ref)) == 1


def test_submit_after_a_crash_before_the_ref_was_stored_pushes_once(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_queue()
    inputs = make_inputs()
    prepared = kaggle_backend.prepare(inputs, {})
    first = kaggle_backend.submit(inputs, prepared)  # …and the worker died before storing it
    second = kaggle_backend.submit(inputs, prepared)
    assert second["kernel"] == first["kernel"]
    assert kaggle_client_env.pushes(slug_of(first)) == 1 and kaggle_client_env.kernels() == [slug_of(first)]


def test_submit_whose_answer_was_lost_pushes_once(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_queue()
    kaggle_client_env.drop("SaveKernel", after_processing=True)
    ref = submitted(kaggle_backend, make_inputs())
    assert kaggle_client_env.calls("SaveKernel") == 1 and kaggle_client_env.pushes(slug_of(ref)) == 1


def test_submit_refuses_to_run_before_prepare(kaggle_backend, make_inputs):
    with pytest.raises(BackendError) as raised:
        kaggle_backend.submit(make_inputs(), {})
    assert not raised.value.transient


# --- a real run -----------------------------------------------------------------------------------------------


@dataclass
class FinishedRun:
    """A job run to the end on the emulator: the backend, its ref and every poll's answer."""

    emulator: KaggleEmulator
    backend: KaggleBackend
    ref: dict
    results: list[PollResult]
    folder: Path

    @property
    def lines(self) -> list[str]:
        """Every log line the polls returned, in order."""
        return [line for result in self.results for line in result.lines]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> FinishedRun:
    """The tiny model trained through the backend, polled to the end (once per test process)."""
    folder = tmp_path_factory.mktemp("kaggle-run")
    accounts = {KAGGLE_USER: KAGGLE_KEY}
    with KaggleEmulator(folder / "kaggle", accounts) as emulator, pytest.MonkeyPatch.context() as patch:
        point_client_at(emulator, patch, folder / "kaggle-config")
        backend = kaggle_backend_for(folder / "data")
        ref = submitted(backend, training_inputs(folder / "job"))
        yield FinishedRun(emulator, backend, ref, poll_to_the_end(backend, ref), folder)


def progress_steps(lines: list[str]) -> list[int]:
    """The steps of the progress lines among lines."""
    events = [json.loads(line.split("@@studio ", 1)[1]) for line in lines if "@@studio " in line]
    return [event["step"] for event in events if event["type"] == "progress"]


@pytest.mark.xdist_group("kaggle-run")
def test_poll_streams_the_progress_lines_of_a_real_run_to_complete(finished_run):
    states = [result.state for result in finished_run.results]
    assert states[-1] == "complete" and "running" in states
    assert set(states) <= {"queued", "running", "complete"}
    assert progress_steps(finished_run.lines) == [1, 2, 3, 4]
    assert any('"type": "done"' in line for line in finished_run.lines)
    assert finished_run.ref["log_events"] == len(finished_run.emulator.kernel(slug_of(finished_run.ref))["log"]
                                                 .splitlines())


@pytest.mark.xdist_group("kaggle-run")
def test_the_kernel_leaves_one_archive_and_fetch_outputs_unpacks_it(finished_run):
    kernel = finished_run.emulator.kernel(slug_of(finished_run.ref))
    assert kernel["outputs"] == [bootstrap.OUTPUT_ARCHIVE]
    with pytest.MonkeyPatch.context() as patch:
        point_client_at(finished_run.emulator, patch, finished_run.folder / "kaggle-config")
        into = finished_run.folder / "outputs"
        paths = finished_run.backend.fetch_outputs(finished_run.ref, into)
        assert finished_run.backend.fetch_outputs(finished_run.ref, into) == paths  # a retried step
    names = {path.relative_to(into).as_posix() for path in paths}
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json", "metrics.json",
            "kaggle.log"} <= names
    assert not any(name.startswith("checkpoints/") for name in names)
    assert json.loads((into / "metrics.json").read_text())["step"] == 4


def test_a_kernel_error_surfaces_the_training_programs_message(kaggle_backend, make_inputs):
    config = {**TINY_CONFIG, "hyperparameters": {**TINY_CONFIG["hyperparameters"], "learning_rate": 5}}
    ref = submitted(kaggle_backend, make_inputs(config=config))
    last = poll_to_the_end(kaggle_backend, ref)[-1]
    assert last.state == "error"
    assert last.message == "hyperparameters.learning_rate must be a number between 0 and 1, not 5."


SAVE_TINY_MODEL = """
import sys
from trainer.models import build_tiny_model, build_tiny_tokenizer
tokenizer = build_tiny_tokenizer()
build_tiny_model(tokenizer).save_pretrained(sys.argv[1])
tokenizer.save_pretrained(sys.argv[1])
"""


def test_a_kaggle_model_is_attached_and_trained_from_its_mounted_folder(kaggle_backend, kaggle_client_env,
                                                                        make_inputs, tmp_path):
    subprocess.run([sys.executable, "-c", SAVE_TINY_MODEL, str(tmp_path / "model")], check=True, cwd=PROJECT_ROOT,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    kaggle_client_env.add_model("alice/tiny-llama/transformers/tiny", 3, tmp_path / "model")
    ref = submitted(kaggle_backend, make_inputs(model_source="kaggle:alice/tiny-llama/transformers/tiny"))
    results = poll_to_the_end(kaggle_backend, ref)
    assert results[-1].state == "complete", results[-1].message
    lines = [line for result in results for line in result.lines]
    [start] = [parse_progress_line(line) for line in lines if '"type": "start"' in line]
    assert start["base_model"].endswith("/input/tiny-llama/transformers/tiny/3")


def test_a_session_kaggle_ends_reports_kaggles_failure_message(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_queue()
    ref = submitted(kaggle_backend, make_inputs())
    kaggle_client_env.fail_session(slug_of(ref), "The session ran out of its 12 hours.")
    result = kaggle_backend.poll(ref)
    assert (result.state, result.message) == ("error", "The session ran out of its 12 hours.")


# --- failures of Kaggle -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GetDatasetStatus", "StartBlobUpload", "CreateDataset", "SaveKernel",
                                    "GetKernelSessionStatus"])
def test_5xx_bursts_are_retried_until_they_pass(kaggle_backend, kaggle_client_env, make_inputs, method):
    kaggle_client_env.hold_queue()
    kaggle_client_env.fail(method, status=503, times=kaggle_backend.patience.attempts - 1)
    ref = submitted(kaggle_backend, make_inputs())
    assert kaggle_backend.poll(ref).state == "queued"
    assert kaggle_client_env.pushes(slug_of(ref)) == 1
    assert len(kaggle_client_env.dataset(dataset_slug("studio", 7))["versions"]) == 1
    assert kaggle_client_env.calls(method) >= kaggle_backend.patience.attempts


def test_dropped_connections_are_retried(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_queue()
    for method in ("CreateDataset", "SaveKernel", "GetKernelSessionStatus"):
        kaggle_client_env.drop(method)
    ref = submitted(kaggle_backend, make_inputs())
    assert kaggle_backend.poll(ref).state == "queued"
    assert kaggle_client_env.pushes(slug_of(ref)) == 1 and kaggle_client_env.datasets() == [dataset_slug("studio", 7)]


def test_a_persistent_5xx_becomes_a_transient_error(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_queue()
    ref = submitted(kaggle_backend, make_inputs())
    kaggle_client_env.fail("GetKernelSessionStatus", status=500, times=100)
    calls = kaggle_client_env.calls("GetKernelSessionStatus")
    with pytest.raises(BackendError) as raised:
        kaggle_backend.poll(ref)
    assert raised.value.transient and "500" in raised.value.message
    assert kaggle_client_env.calls("GetKernelSessionStatus") == calls + kaggle_backend.patience.attempts


def test_bad_credentials_are_a_permanent_error(kaggle_backend, kaggle_client_env, make_inputs, tmp_path):
    kaggle_client_env.hold_queue()
    ref = submitted(kaggle_backend, make_inputs())
    impostor = kaggle_backend_for(tmp_path / "other", kaggle_username=KAGGLE_USER, kaggle_key="wrong-key")
    for call in (lambda: impostor.prepare(make_inputs(job_id=8), {}), lambda: impostor.poll(ref)):
        with pytest.raises(BackendError) as raised:
            call()
        assert not raised.value.transient and "KAGGLE_KEY" in raised.value.message


def test_missing_credentials_are_a_permanent_error(kaggle_client_env, make_inputs, tmp_path):
    backend = kaggle_backend_for(tmp_path, kaggle_username="", kaggle_key="")
    with pytest.raises(BackendError) as raised:
        backend.prepare(make_inputs(), {})
    assert not raised.value.transient and "credentials" in raised.value.message


def test_an_access_token_authenticates_as_its_account(kaggle_client_env, make_inputs, monkeypatch, tmp_path):
    kaggle_client_env.add_token("alice-token", KAGGLE_USER)
    monkeypatch.setenv("KAGGLE_API_TOKEN", "")  # restored after the test, whatever the backend sets
    backend = kaggle_backend_for(tmp_path, kaggle_api_token="alice-token")
    assert backend.prepare(make_inputs(), {})["dataset"] == f"{KAGGLE_USER}/{dataset_slug('studio', 7)}"


# --- cancel and quota -----------------------------------------------------------------------------------------


def test_cancel_before_submit_is_confirmed(kaggle_backend):
    assert kaggle_backend.cancel({}).confirmed


def test_cancel_after_submit_says_the_kaggle_session_runs_on(kaggle_backend, kaggle_client_env, make_inputs):
    kaggle_client_env.hold_queue()
    ref = submitted(kaggle_backend, make_inputs())
    outcome = kaggle_backend.cancel(ref)
    assert not outcome.confirmed and outcome.message == CANCEL_MESSAGE and "runs on" in outcome.message
    assert kaggle_client_env.kernel(slug_of(ref))["state"] == "queued"


def test_a_session_cancelled_through_kagglesdk_polls_as_cancelled(kaggle_backend, kaggle_client_env, make_inputs,
                                                                   monkeypatch):
    kaggle_client_env.hold_queue()
    ref = submitted(kaggle_backend, make_inputs())
    # The session id exists only inside Kaggle; kagglesdk's own client (TEST environment) can send it.
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    request = ApiCancelKernelSessionRequest()
    request.kernel_session_id = kaggle_client_env.kernel(slug_of(ref))["session_id"]
    with KaggleClient(username=KAGGLE_USER, password=KAGGLE_KEY) as client:
        assert client.kernels.kernels_api_client.cancel_kernel_session(request).error_message == ""
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    assert kaggle_backend.poll(ref).state == "cancelled"


def test_quota_reports_this_weeks_gpu_hours(kaggle_backend, kaggle_client_env):
    kaggle_client_env.set_quota(used_hours=12.5, limit_hours=30)
    quota = kaggle_backend.quota()
    assert (quota["used_hours"], quota["limit_hours"]) == (12.5, 30.0)
    assert quota["resets_at"].endswith("+00:00")


# --- the kernel's bootstrap -----------------------------------------------------------------------------------


def test_the_bootstrap_finds_an_input_mounted_deeper(tmp_path):
    (tmp_path / "datasets" / "alice" / "my-data").mkdir(parents=True)
    assert bootstrap.find_input(tmp_path, "my-data") == tmp_path / "datasets" / "alice" / "my-data"
    with pytest.raises(FileNotFoundError):
        bootstrap.find_input(tmp_path, "missing-data")


def test_a_kernel_that_cannot_start_the_program_ends_with_the_protocols_error_line(tmp_path):
    job = {"config": TINY_CONFIG, "dataset_slug": "never-attached", "model_path": None}
    (tmp_path / "studio_job.py").write_text(kernel_script(job, bundle_bytes()))
    env = {**os.environ, "KAGGLE_INPUT_DIR": str(tmp_path / "input"), "KAGGLE_WORKING_DIR": str(tmp_path / "out")}
    # Run away from the checkout, as on Kaggle: the bootstrap's error line comes from the bundle it carries.
    done = subprocess.run([sys.executable, "studio_job.py"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={key: value for key, value in env.items() if key != "PYTHONPATH"})
    assert done.returncode == 1, done.stderr
    event = parse_progress_line(done.stdout.splitlines()[-1])
    assert event["type"] == "error" and event["message"] == (
        "The Kaggle kernel could not start the training program: "
        f"the input never-attached is not attached under {tmp_path / 'input'}")
