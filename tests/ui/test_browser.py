"""The Studio in a real Chromium, served by gunicorn with real workers training the tiny model.

One user's whole path (sign in, upload a bad and a good file, create a job with the form, watch it train, download
the adapter), cancelling a running job, and every page at phone width; no console error and no CSP violation.
"""
from __future__ import annotations

import io
import json
import re
import struct
import time

import pytest
from playwright.sync_api import expect

from app.db import database
from app.models import Artifact
from tests.support.accounts import PASSWORD
from tests.support.data import as_jsonl, learnable_chats
from tests.support.factories import running_job
from tests.support.web import gunicorn
from tests.support.workers import worker_pool
from tests.ui.browser import (
    MID_RUN,
    Console,
    chromium,
    horizontal_overflow,
    new_context,
    screenshot,
    sign_in,
)

TRAINING_MINUTES = 120_000  # ms: a Playwright timeout long enough for the tiny model on a busy 2-core machine
# Page answers can take seconds while the other test process trains models on the same two cores.
expect.set_options(timeout=20_000)
GOOD = as_jsonl(learnable_chats(64))
BAD = as_jsonl(learnable_chats(2)) + b'{"messages": [oops\n' + as_jsonl(learnable_chats(12, seed=1))


@pytest.fixture
def settings(s3_settings):
    """Production-shaped services (PostgreSQL, S3, Redis), no rate limits (one test client sends everything)."""
    return s3_settings.model_copy(update={"rate_limits_enabled": False, "worker_pool_size": 2,
                                         "job_lease_seconds": 4, "reconcile_interval": 5})


@pytest.fixture
def web(app, settings, tmp_path):
    """The app under gunicorn (gunicorn.conf.py, as in production) on the test's services; yields its base URL."""
    with gunicorn(settings, tmp_path / "web.log") as server:
        yield server.url


@pytest.fixture
def studio(web, settings, tmp_path):
    """The web app and a pool of two workers (one trains, one runs the short steps); yields the base URL."""
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2):
        yield web


@pytest.fixture
def console():
    """What the browser reported as going wrong; each test asserts it stayed empty."""
    return Console()


@pytest.fixture
def desktop(studio, console):
    """A desktop-sized page of a fresh browser profile."""
    with chromium() as browser:
        context = new_context(browser, console, studio)
        yield context.new_page()
        context.close()


def upload(page, filename: str, content: bytes, name: str) -> int:
    """Upload a file with the dataset form; returns the new dataset's id from the page it opens."""
    page.goto("/datasets")
    form = page.locator("#upload-form")
    if not form.is_visible():
        page.get_by_text("Upload a dataset").click()
    page.get_by_label("Name").fill(name)
    page.locator("#upload-file").set_input_files({"name": filename, "mimeType": "application/x-ndjson",
                                                  "buffer": content})
    page.get_by_role("button", name="Upload and validate").click()
    expect(page).to_have_url(re.compile(r"/datasets/\d+$"))
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    return int(page.url.rsplit("/", 1)[1])


def points(page) -> int:
    """How many training-loss points the chart draws now."""
    return len((page.locator("#job-chart polyline.chart-train").get_attribute("points") or "").split())


def test_upload_train_watch_live_and_download_the_adapter(app, desktop, user, console, studio):
    page, started = desktop, time.monotonic()
    sign_in(page, user.email, PASSWORD)
    screenshot(page, "desktop-dashboard-empty")

    bad = upload(page, "broken.jsonl", BAD, "broken chats")
    problems = page.locator("table.problems tbody tr")
    expect(problems.first).to_contain_text("3")
    expect(page.locator("#dataset-report")).to_contain_text("cannot be trained on yet")
    screenshot(page, "desktop-dataset-invalid")

    good = upload(page, "chats.jsonl", GOOD, "greeting chats")
    expect(page.locator("#dataset-report")).to_contain_text("64 chat examples ready to train on")
    expect(page.locator("table.stats")).to_contain_text("Tokens per example")
    expect(page.locator("#dataset-preview")).to_contain_text("Example 1")
    screenshot(page, "desktop-dataset-ready")

    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_role("button", name="New job").click()
    expect(page.get_by_role("heading", name="New fine-tuning job")).to_be_visible()
    estimate = page.locator("#memory-estimate")
    method = page.locator("input[name=method]")
    page.get_by_label("Model", exact=True).select_option("qwen2.5-3b-instruct")
    expect(estimate).to_contain_text("Qwen2.5 3B Instruct")
    method.and_(page.locator("[value=full]")).check()
    expect(estimate).to_contain_text("does not fit T4 16 GB")
    expect(estimate).to_contain_text("use LoRA or QLoRA")
    method.and_(page.locator("[value=qlora]")).check()
    expect(estimate).to_contain_text("fits T4 16 GB")
    expect(estimate).not_to_contain_text("does not fit")
    page.get_by_label("Model", exact=True).select_option("tiny-random-llama")
    expect(estimate).to_contain_text("Tiny random Llama")
    method.and_(page.locator("[value=lora]")).check()
    expect(estimate).to_contain_text("fits T4 16 GB")
    page.get_by_text("Quick test").click()
    expect(page.locator("#hp-max-seq-length")).to_have_value("512")
    page.get_by_label("Training dataset").select_option(str(good))
    page.get_by_role("textbox", name="Name").fill("greeter")
    page.locator("#hp-batch-size").fill("0")
    page.locator("#hp-batch-size").press("Tab")  # the estimate refreshes on change: let it land before submitting
    expect(estimate).to_contain_text("must each be at least 1")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#hp-batch-size-error")).to_contain_text("Must be a number greater than 0, not 0.")
    expect(page.locator("#hp-batch-size")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "desktop-new-job-errors")
    fill_fast_hyperparameters(page)
    screenshot(page, "desktop-new-job")
    page.get_by_role("button", name="Start training").click()

    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#flash")).to_contain_text("Job “greeter” queued.")
    bar, status = page.locator("#job-progress-bar"), page.locator("#job-status")
    expect(bar).to_have_attribute("value", MID_RUN, timeout=TRAINING_MINUTES)
    seen_percent, seen_points = float(bar.get_attribute("value")), points(page)
    expect(page.locator("#job-log")).to_contain_text("step")
    screenshot(page, "desktop-job-running")
    expect(status).to_have_text("succeeded", timeout=TRAINING_MINUTES)
    trained_at = time.monotonic()
    assert float(bar.get_attribute("value")) == 100.0 > seen_percent
    assert points(page) > max(seen_points, 1), "the chart grew while the job trained"
    expect(page.locator("#job-chart polyline.chart-eval")).to_be_attached()
    expect(page.locator("#job-progress")).not_to_have_attribute("hx-trigger", re.compile(".*"))
    screenshot(page, "desktop-job-succeeded")

    link = page.get_by_role("link", name="Download adapter/adapter_model.safetensors")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "adapter_model.safetensors"
    content = open(download.path(), "rb").read()  # noqa: SIM115 (read at once)
    with app.app_context(), database.connection_context():
        stored = Artifact.get((Artifact.job == job_id) & (Artifact.name == "adapter/adapter_model.safetensors"))
    assert len(content) == stored.size_bytes
    header_length = struct.unpack("<Q", content[:8])[0]
    assert any("lora_A" in tensor for tensor in json.loads(content[8:8 + header_length]))

    for name in ("dashboard", "datasets", "jobs", "settings"):
        page.goto({"dashboard": "/", "settings": "/settings/tokens"}.get(name, f"/{name}"))
        screenshot(page, f"desktop-{name}")
    print(f"\nbrowser flow: signed in to succeeded in {trained_at - started:.1f} s, "
          f"whole test {time.monotonic() - started:.1f} s; datasets {bad}, {good}; job {job_id}")
    assert console.problems == [], "\n".join(console.problems)
    assert console.failed_loads == [("/jobs", 422)], "only the form sent back with its errors"


def fill_fast_hyperparameters(page) -> None:
    """Hyperparameters that train the tiny model in seconds, long enough to watch a few polls."""
    page.get_by_text("Advanced settings").click()
    values = {"#hp-batch-size": "4", "#hp-max-seq-length": "64", "#hp-gradient-accumulation-steps": "1",
              "#hp-max-steps": "300", "#hp-logging-steps": "1", "#hp-eval-steps": "100", "#hp-save-steps": "1000",
              "#hp-validation-split": "0.1", "#hp-learning-rate": "0.01", "#hp-lora-r": "4", "#hp-lora-alpha": "8"}
    for selector, value in values.items():
        page.locator(selector).fill(value)


def api_upload(client, headers, name: str) -> int:
    """A ready dataset, uploaded through the API; returns its id."""
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(GOOD), "chats.jsonl"), "name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def create_long_job(client, headers) -> int:
    """A local job on a ready dataset that trains for a minute or more, through the API."""
    body = {"dataset_id": api_upload(client, headers, "chats"), "base_model": "tiny-random-llama", "backend": "local",
            "name": "long run", "hyperparameters": {"max_steps": 5_000, "batch_size": 4, "max_seq_length": 64,
                                                    "logging_steps": 1, "save_steps": 100_000, "lora_r": 4,
                                                    "gradient_accumulation_steps": 1, "lora_alpha": 8}}
    response = client.post("/api/v1/jobs", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_a_running_job_is_cancelled_only_after_confirmation(client, user, make_token, desktop, console):
    job_id = create_long_job(client, {"Authorization": f"Bearer {make_token(user)}"})
    page = desktop
    sign_in(page, user.email, PASSWORD)
    page.goto(f"/jobs/{job_id}")
    bar, status = page.locator("#job-progress-bar"), page.locator("#job-status")
    expect(bar).to_have_attribute("value", MID_RUN, timeout=TRAINING_MINUTES)
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Cancel job").click()
    before = bar.get_attribute("value")
    expect(bar).not_to_have_attribute("value", before)  # still training: a later poll shows more progress
    expect(status).to_have_text("running")
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#flash")).to_contain_text("Cancel requested")
    expect(status).to_have_text("cancelled", timeout=60_000)
    expect(page.locator("#job-progress")).not_to_have_attribute("hx-trigger", re.compile(".*"))
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert dialogs == ["Cancel the job “long run”? Training stops and cannot be resumed."] * 2
    screenshot(page, "desktop-job-cancelled")
    assert console.problems == [], "\n".join(console.problems)
    assert console.failed_loads == []


def test_every_page_fits_a_phone_screen(web, client, user, make_token, console, in_db):
    dataset_id = api_upload(client, {"Authorization": f"Bearer {make_token(user)}"}, "phone dataset")
    job = in_db(running_job, user, steps=40, total=120, evals=2, logs=30, name="a job with a fairly long name")
    pages = {"dashboard": "/", "datasets": "/datasets", "dataset": f"/datasets/{dataset_id}", "jobs": "/jobs",
             "new-job": "/jobs/new", "job": f"/jobs/{job.id}", "settings": "/settings/tokens"}
    with chromium() as browser:
        context = new_context(browser, console, web, phone=True)
        page = context.new_page()
        page.goto("/login")
        screenshot(page, "phone-login")
        too_wide = {"login": horizontal_overflow(page)}
        sign_in(page, user.email, PASSWORD)
        for name, path in pages.items():
            page.goto(path)
            expect(page.locator("main h1")).to_be_visible()
            screenshot(page, f"phone-{name}")
            too_wide[name] = horizontal_overflow(page)
        context.close()
    assert too_wide == dict.fromkeys(["login", *pages], 0)
    assert console.problems == [], "\n".join(console.problems)
    assert console.failed_loads == []
