"""What a user's script does with the official `openai` client, run as a subprocess under the client version the
test chose (PYTHONPATH): `python -m tests.openai_api.client_script <phase> <base_url> <api_key> <file>`.

Each phase asserts as it goes and prints one JSON line of what it saw, for the test to check against the Studio.
"""
from __future__ import annotations

import json
import sys

import openai
from openai import OpenAI

from tests.support.data import as_jsonl, learnable_chats, learnable_pairs
from tests.support.waiting import wait_until

TERMINAL = {"succeeded", "failed", "cancelled"}
TINY = "tiny-random-llama"


def client_for(base_url: str, api_key: str) -> OpenAI:
    """The client as a script makes it: only base_url changed (no retries, so each error shows at once)."""
    return OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0)


def upload(client: OpenAI) -> openai.types.FileObject:
    """Upload the cookbook's kind of chat file."""
    data = as_jsonl(learnable_chats(32))
    uploaded = client.files.create(file=("chats.jsonl", data), purpose="fine-tune")
    assert uploaded.status == "processed" and uploaded.bytes == len(data), uploaded
    assert client.files.retrieve(uploaded.id).filename == "chats.jsonl"
    assert client.files.content(uploaded.id).content == data
    assert uploaded.id in [f.id for f in client.files.list()]
    return uploaded


def train(client: OpenAI, tag: str) -> dict:
    """Upload, create a job on the tiny model, wait for it with the client's calls, read events and checkpoints."""
    training_file = upload(client)
    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=training_file.id, suffix="walk", seed=7, metadata={"run": tag},
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2}}})
    assert job.status in ("queued", "running") and job.seed == 7 and job.metadata == {"run": tag}, job
    done = wait_until(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in TERMINAL and j, 240,
                      "the job to end")
    assert done.status == "succeeded", done
    assert done.fine_tuned_model == f"ft:{TINY}:walk:{job.id}", done.fine_tuned_model
    assert done.hyperparameters.n_epochs == 1 and done.hyperparameters.learning_rate_multiplier == 2
    first = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert len(first.data) == 3 and first.has_more, first
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=3))  # every page, by `after`
    ids = [int(event.id.split("-")[1]) for event in events]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids) > 3, ids
    metrics = [event for event in events if event.type == "metrics"]
    assert metrics and all(isinstance(event.data["train_loss"], float) for event in metrics), metrics
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].fine_tuning_job_id == job.id, checkpoints
    models = [model.id for model in client.models.list()]
    assert TINY in models and done.fine_tuned_model in models, models
    assert client.models.retrieve(done.fine_tuned_model).id == done.fine_tuned_model
    return {"job": job.id, "file": training_file.id, "model": done.fine_tuned_model,
            "checkpoint_steps": [c.step_number for c in checkpoints], "events": len(events)}


def page_and_cancel(client: OpenAI, tag: str) -> dict:
    """With no worker running: page through jobs by `after`, filter by metadata, cancel, and every error."""
    training_file = upload(client)
    created = [client.fine_tuning.jobs.create(model=TINY, training_file=training_file.id,
                                              metadata={"run": tag, "n": str(n)}).id for n in range(5)]
    first = client.fine_tuning.jobs.list(limit=2)
    assert [job.id for job in first.data] == created[::-1][:2] and first.has_more, first
    assert [job.id for job in first.get_next_page().data] == created[::-1][2:4]
    every = [job.id for job in client.fine_tuning.jobs.list(limit=2)]
    assert every[:5] == created[::-1], every
    assert [job.id for job in client.fine_tuning.jobs.list(metadata={"run": tag, "n": "3"})] == [created[3]]
    cancelled = client.fine_tuning.jobs.cancel(created[0])
    assert cancelled.status == "cancelled", cancelled
    errors = expected_errors(client, created[0], training_file.id)
    dpo = dpo_job(client, training_file.id)
    return {"jobs": created, "cancelled": created[0], "file": training_file.id, "errors": errors, "dpo": dpo}


def dpo_job(client: OpenAI, chats_file: str) -> dict:
    """A DPO job on OpenAI's preference lines is accepted; DPO on a chat file is the client's BadRequestError."""
    lines = [{"input": {"messages": [{"role": "user", "content": pair["prompt"]}]},
              "preferred_output": [{"role": "assistant", "content": pair["chosen"]}],
              "non_preferred_output": [{"role": "assistant", "content": pair["rejected"]}]}
             for pair in learnable_pairs(16)]
    pairs = client.files.create(file=("pairs.jsonl", as_jsonl(lines)), purpose="fine-tune")
    assert pairs.status == "processed", pairs
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    job = client.fine_tuning.jobs.create(model=TINY, training_file=pairs.id, method=method)
    assert job.status in ("validating_files", "queued") and job.method.type == "dpo", job
    assert job.method.dpo.hyperparameters.beta == 0.2, job.method
    try:
        client.fine_tuning.jobs.create(model=TINY, training_file=chats_file, method=method)
    except openai.BadRequestError as error:
        refused = error.body.get("param") if isinstance(error.body, dict) else None
    else:
        raise AssertionError("DPO on a chat file was accepted")
    return {"job": job.id, "refused_param": refused}


def expected_errors(client: OpenAI, finished_job: str, file_id: str) -> dict:
    """Each mistake a script can make, raised as the client's own exception type; their params."""
    jobs = client.fine_tuning.jobs
    cases = {
        "missing job": (openai.NotFoundError, lambda: jobs.retrieve("ftjob-999999999")),
        "malformed job id": (openai.NotFoundError, lambda: jobs.retrieve("not-a-job")),
        "missing file": (openai.NotFoundError, lambda: client.files.retrieve("file-999999999")),
        "unknown model": (openai.BadRequestError, lambda: jobs.create(model="no such model", training_file=file_id)),
        "unknown file": (openai.BadRequestError, lambda: jobs.create(model=TINY, training_file="file-999999999")),
        "bad epochs": (openai.BadRequestError, lambda: jobs.create(
            model=TINY, training_file=file_id, method={"type": "supervised", "supervised": {
                "hyperparameters": {"n_epochs": 0}}})),
        "reinforcement": (openai.BadRequestError, lambda: jobs.create(
            model=TINY, training_file=file_id, method={"type": "reinforcement"})),
        "cancel finished": (openai.BadRequestError, lambda: jobs.cancel(finished_job)),
        "pause": (openai.BadRequestError, lambda: jobs.pause(finished_job)),
        "wrong purpose": (openai.BadRequestError, lambda: client.files.create(file=("a.jsonl", b"{}"),
                                                                               purpose="batch")),
        "bad key": (openai.AuthenticationError, lambda: OpenAI(base_url=str(client.base_url), api_key="fts_wrong",
                                                               max_retries=0).models.list()),
    }
    seen = {}
    for name, (error_type, call) in cases.items():
        try:
            call()
        except error_type as error:
            body = error.body if isinstance(error.body, dict) else {}
            seen[name] = {"status": error.status_code, "param": body.get("param"), "message": body.get("message")}
        else:
            raise AssertionError(f"{name}: no {error_type.__name__}")
    return seen


PHASES = {"train": train, "page_and_cancel": page_and_cancel}

if __name__ == "__main__":
    phase, base_url, api_key, tag = sys.argv[1:5]
    outcome = PHASES[phase](client_for(base_url, api_key), tag)
    print(json.dumps({"openai": openai.__version__, **outcome}))
