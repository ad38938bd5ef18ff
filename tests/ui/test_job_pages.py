"""The job pages through the Flask test client: list, new-job form and estimate, detail, live progress, cancel."""
from __future__ import annotations

import io
import re
import time

import pytest

from app.extensions import get_store
from app.models import Job, utcnow
from tests.support.database import counted_queries
from tests.support.factories import make_artifact, make_dataset, make_job, running_job
from tests.support.pages import htmx

FAST = {"max_steps": "8", "batch_size": "4", "max_seq_length": "64", "logging_steps": "1"}


def form_for(dataset_id, **overrides) -> dict:
    """A complete new-job form for the tiny model on the local backend, as the browser posts it."""
    values = {"name": "", "dataset_id": str(dataset_id), "validation_dataset_id": "", "base_model": "tiny-random-llama",
              "method": "lora", "backend": "local", "preset": "quick", "epochs": "1", "learning_rate": "0.0002",
              "gradient_accumulation_steps": "1", "lora_r": "8", "lora_alpha": "16", "lora_dropout": "0.05",
              "warmup_ratio": "0.03", "lr_scheduler": "cosine", "weight_decay": "0", "eval_steps": "25",
              "save_steps": "50", "validation_split": "0", "seed": "42", "gradient_checkpointing": "true", **FAST}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def field_error(html: str, input_id: str) -> str:
    """The error message rendered next to the input with this id (and the input points at it)."""
    assert re.search(rf'id="{input_id}"[^>]*aria-invalid="true"[^>]*aria-describedby="{input_id}-error"', html,
                     re.S), f"{input_id} is not marked invalid"
    match = re.search(rf'<small id="{input_id}-error" class="field-error">([^<]*)</small>', html)
    assert match, f"no error next to {input_id}"
    return match.group(1)


# -- the list ------------------------------------------------------------------------------------------------------


def test_jobs_page_without_jobs_says_how_to_start(browser):
    html = browser.get("/jobs").get_data(as_text=True)
    assert "No jobs yet." in html and 'href="/jobs/new"' in html and 'href="/datasets"' in html


def test_list_filters_by_status_and_name_and_htmx_gets_only_the_table(browser, owner, in_db):
    in_db(make_job, owner, name="alpha support bot", status="succeeded")
    in_db(make_job, owner, name="beta support bot", status="failed")
    in_db(make_job, owner, name="gamma summariser", status="succeeded")
    page = browser.get("/jobs?status=succeeded&q=support").get_data(as_text=True)
    assert "<html" in page and "alpha support bot" in page
    assert "beta support bot" not in page and "gamma summariser" not in page
    partial = browser.get("/jobs?q=bot", headers=htmx("job-table")).get_data(as_text=True)
    assert partial.startswith('<div id="job-table">') and "<html" not in partial
    assert "alpha support bot" in partial and "beta support bot" in partial and "gamma" not in partial
    boosted = browser.get("/jobs?q=bot", headers=htmx()).get_data(as_text=True)
    assert "<html" in boosted, "a boosted link (no widget targeted) gets the whole page"
    assert "No failed job matches “gamma”" in browser.get("/jobs?status=failed&q=gamma").get_data(as_text=True)
    running = in_db(running_job, owner, steps=30, total=120)
    assert f'<progress value="25.0" max="100" aria-label="Progress of {running.name}">' in browser.get(
        "/jobs?status=running").get_data(as_text=True)


def test_list_pages_keep_the_filter(browser, owner, in_db):
    for index in range(3):
        in_db(make_job, owner, name=f"paged job {index}", status="queued")
    html = browser.get("/jobs?status=queued&per_page=2").get_data(as_text=True)
    older = re.search(r'href="(/jobs\?status=queued&amp;per_page=2&amp;before=\d+)"', html)
    assert "3 in all" in html and older, html
    last = browser.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "paged job 0" in last and "paged job 2" not in last and "Older" not in last
    assert browser.get("/jobs?status=nonsense").status_code == 422


# -- the new-job form ----------------------------------------------------------------------------------------------


def test_form_offers_catalog_models_ready_datasets_presets_and_an_estimate(browser, owner, in_db):
    ready = in_db(make_dataset, owner, name="ready chats")
    in_db(make_dataset, owner, name="broken upload", status="invalid")
    html = browser.get(f"/jobs/new?dataset_id={ready.id}").get_data(as_text=True)
    assert f'<option value="{ready.id}" selected>ready chats (10 chat examples)</option>' in html
    assert "broken upload" not in html
    assert "Qwen2.5 0.5B Instruct · 494 M · apache-2.0" in html
    assert "Llama 3.2 1B Instruct · 1.2 B · llama3.2 · gated" in html
    assert all(f'name="preset" value="{key}"' in html for key in ("quick", "balanced", "thorough"))
    assert 'id="hp-max-seq-length" name="max_seq_length" value="1024"' in html  # the balanced preset
    assert "fits T4 16 GB" in html and 'hx-get="/jobs/new/estimate"' in html


def test_form_without_a_ready_dataset_says_to_upload_one(browser):
    html = browser.get("/jobs/new").get_data(as_text=True)
    assert "You have no ready dataset yet." in html and 'href="/datasets"' in html


def test_choosing_a_preset_returns_its_hyperparameters_and_the_estimate_out_of_band(browser):
    response = browser.get("/jobs/new?preset=thorough&base_model=qwen2.5-3b-instruct&method=full&backend=local",
                           headers=htmx("hyperparameters"))
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<fieldset id="hyperparameters">') and "<html" not in html
    assert 'name="max_seq_length" value="2048"' in html and 'name="epochs" value="5"' in html
    assert re.search(r'<section id="memory-estimate"[^>]* hx-swap-oob="true">', html)
    assert "Qwen2.5 3B Instruct" in html and "does not fit T4 16 GB" in html


@pytest.mark.parametrize(("query", "verdict"), [
    ("base_model=qwen2.5-0.5b-instruct&method=lora&max_seq_length=1024&batch_size=4&lora_r=16", "fits T4 16 GB"),
    ("base_model=qwen2.5-3b-instruct&method=full&max_seq_length=2048&batch_size=4&lora_r=16", "does not fit T4 16 GB"),
])
def test_memory_estimate_fragment_says_whether_the_run_fits_a_t4(browser, query, verdict):
    html = browser.get(f"/jobs/new/estimate?{query}&backend=local&gradient_checkpointing=true",
                       headers=htmx("memory-estimate")).get_data(as_text=True)
    assert "<section id=\"memory-estimate\"" in html and "<html" not in html
    assert verdict in html and "Weights" in html and "Activations" in html
    assert "ignore_memory_warning" not in html, "a local run is never refused for memory"


def test_estimate_explains_why_a_run_does_not_fit_and_offers_the_override_for_kaggle(browser):
    html = browser.get("/jobs/new/estimate?base_model=qwen2.5-3b-instruct&method=full&max_seq_length=2048"
                       "&batch_size=4&lora_r=16&backend=kaggle&gradient_checkpointing=true").get_data(as_text=True)
    assert "does not fit T4 16 GB" in html and "use LoRA or QLoRA" in html
    assert 'name="ignore_memory_warning" value="true"' in html


def test_estimate_of_a_model_outside_the_catalog_or_bad_numbers_says_why_there_is_none(browser):
    outside = browser.get("/jobs/new/estimate?base_model=someone/custom-7b&method=lora").get_data(as_text=True)
    assert "No estimate for models outside the catalog" in outside
    bad = browser.get("/jobs/new/estimate?base_model=qwen2.5-0.5b-instruct&method=lora&max_seq_length=x"
                      "&batch_size=4&lora_r=8").get_data(as_text=True)
    assert "Enter whole numbers" in bad
    too_long = browser.get("/jobs/new/estimate?base_model=tiny-random-llama&method=lora&max_seq_length=5000"
                           "&batch_size=4&lora_r=8").get_data(as_text=True)
    assert "The model reads at most 4,096 tokens: shorten the sequence length." in too_long


def test_form_errors_are_shown_next_to_their_fields(browser, owner, in_db):
    dataset = in_db(make_dataset, owner)
    form = form_for(dataset.id, batch_size="0", learning_rate="3", base_model="not a model id",
                    csrf_token=browser.csrf)
    response = browser.post("/jobs", data=form, headers=htmx("job-form"))
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and html.startswith('<form id="job-form"') and "<html" not in html
    assert field_error(html, "hp-batch-size") == "Must be a number greater than 0, not 0."
    assert field_error(html, "hp-learning-rate") == "Must be a number between 0 and 1, not 3.0."
    assert "Choose a model from the catalog" in field_error(html, "job-model")
    assert 'value="0"' in html and 'value="3"' in html, "the form comes back as the user left it"
    typo = browser.post("/jobs", data=form_for("", epochs="two", csrf_token=browser.csrf))
    typo_html = typo.get_data(as_text=True)
    assert typo.status_code == 422 and "<html" in typo_html
    assert field_error(typo_html, "hp-epochs") == "Enter a whole number."
    assert field_error(typo_html, "job-dataset") == "Choose the dataset to train on."


def test_form_creates_the_job_and_opens_its_page_with_a_flash(browser, owner, in_db):
    dataset = in_db(make_dataset, owner, name="tiny chats")
    response = browser.post("/jobs", data=form_for(dataset.id, csrf_token=browser.csrf))
    assert response.status_code == 303
    job = in_db(lambda: Job.get(Job.owner == owner.id))
    assert response.headers["Location"] == f"/jobs/{job.id}"
    assert job.hyperparameters["max_steps"] == 8 and job.hyperparameters["batch_size"] == 4
    assert job.hyperparameters["gradient_checkpointing"] is True and job.hyperparameters["packing"] is False
    html = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "Job “tiny-random-llama on tiny chats” queued." in html and 'hx-trigger="every 2s"' in html
    htmx_response = browser.post("/jobs", data=form_for(dataset.id, name="second", csrf_token=browser.csrf),
                                 headers=htmx("job-form"))
    assert htmx_response.status_code == 201 and re.fullmatch(r"/jobs/\d+", htmx_response.headers["HX-Location"])


# -- the job page and its live widgets ------------------------------------------------------------------------------


def test_job_page_shows_progress_chart_log_and_settings(browser, owner, in_db):
    job = in_db(running_job, owner, steps=30, total=120, evals=3, logs=4)
    html = browser.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert '<span class="badge badge-running" id="job-status">running</span>' in html
    assert '<progress id="job-progress-bar" value="25.0" max="100"' in html and "25%" in html
    assert "30 / 120" in html and "42 s" in html  # step and ETA
    assert html.count('<polyline class="chart-line chart-train" points="') == 1
    assert "Training loss (30 points)" in html and "Evaluation loss (3 points)" in html
    assert "log line 3" in html and "Cancel job" in html and "hx-confirm=" in html
    assert 'hx-trigger="every 2s"' in html and 'aria-live="polite"' in html
    assert "<dt>Learning rate</dt>" in html


def test_progress_widget_polls_while_active_and_answers_286_once_terminal(browser, owner, in_db):
    job = in_db(running_job, owner)
    live = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress"))
    body = live.get_data(as_text=True)
    assert live.status_code == 200 and "<html" not in body and 'hx-trigger="every 2s"' in body
    assert 'id="job-chart" class="loss-chart" hx-swap-oob="true"' in body
    assert 'hx-swap-oob="beforeend:#job-log-lines"' in body, "a poll without a cursor gets every line to append"
    in_db(lambda: Job.update(status="succeeded", step=100).where(Job.id == job.id).execute())
    done = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress"))
    assert done.status_code == 286
    finished = done.get_data(as_text=True)
    assert 'hx-trigger="every' not in finished and "Cancel job" not in finished and 'value="100.0"' in finished


def without_durations(body: str) -> str:
    """A page's text without the durations it shows (a second may pass between two polls of a running job)."""
    return re.sub(r"<dd>(?:\d+ (?:h|min|s) ?)+</dd>", "<dd>…</dd>", body)


def test_each_poll_costs_the_same_few_queries_however_many_events(browser, owner, in_db, capsys):
    warm = in_db(running_job, owner, steps=3)
    small, large = in_db(running_job, owner, steps=10), in_db(running_job, owner, steps=9_000, evals=500, logs=500)
    browser.get(f"/jobs/{warm.id}/progress", headers=htmx("job-progress"))  # warm the pool and templates
    counts, seconds, bodies, again = {}, {}, {}, {}
    for job in (small, large):
        with counted_queries() as queries:
            started = time.perf_counter()
            response = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress"))
            seconds[job.id] = time.perf_counter() - started
        assert response.status_code == 200
        counts[job.id], bodies[job.id] = len(queries), response.get_data(as_text=True)
        prepared = [query.split(" ", 1)[0] for query in queries]
        with counted_queries() as queries:
            repeated = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress")).get_data(as_text=True)
        again[job.id] = len(queries)
        # On PostgreSQL the poll's statements are prepared once per connection (app.db.execute_compiled), the
        # first time together with their first EXECUTE.
        assert set(prepared + [query.split(" ", 1)[0] for query in queries]) <= {"PREPARE", "EXECUTE"}
        assert without_durations(repeated) == without_durations(bodies[job.id])
    # The job (with its owner, for the session), the chart's points, the log tail; the artifact list reloads
    # itself. A poll from a page's cursor costs less: tests/ui/test_live_polls.py. Another page's poll of the same
    # version takes the charts drawn already (app/web/jobs/live.py): the job and the log tail.
    assert counts == {small.id: 3, large.id: 3}
    assert again == {small.id: 2, large.id: 2}
    points = re.search(r'class="chart-line chart-train" points="([^"]*)"', bodies[large.id]).group(1).split()
    assert 100 < len(points) <= 201, "the chart is thinned to between half and all of its 200 points (+ the last)"
    assert points[-1].startswith("624.0,"), "the newest step is always drawn (x at the right edge for 9000/9000)"
    assert len(bodies[large.id]) < 40_000
    with capsys.disabled():
        print(f"\nprogress poll of a job with 10,000 events: {counts[large.id]} queries, "
              f"{seconds[large.id] * 1000:.0f} ms (10 events: {seconds[small.id] * 1000:.0f} ms)")


def test_cancel_with_htmx_returns_the_widget_and_the_flash(browser, owner, in_db):
    job = in_db(make_job, owner)
    response = browser.post(f"/jobs/{job.id}/cancel", headers={**htmx("job-progress"), "X-CSRFToken": browser.csrf})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert '<span class="badge badge-cancelled" id="job-status">cancelled</span>' in html
    assert '<div id="flash" aria-live="polite" hx-swap-oob="true"' in html and "Job cancelled." in html
    again = browser.post(f"/jobs/{job.id}/cancel", headers={**htmx("job-progress"), "X-CSRFToken": browser.csrf})
    assert again.status_code == 409 and "The job already cancelled." in again.get_data(as_text=True)


def test_cancel_from_a_plain_form_goes_back_to_the_page(browser, owner, in_db):
    job = in_db(make_job, owner)
    response = browser.post(f"/jobs/{job.id}/cancel", data={"csrf_token": browser.csrf})
    assert response.status_code == 303 and response.headers["Location"] == f"/jobs/{job.id}"
    assert "Job cancelled." in browser.get(f"/jobs/{job.id}").get_data(as_text=True)


def test_artifacts_are_listed_with_sizes_and_download_through_the_page_route(app, browser, owner, in_db):
    job = in_db(make_job, owner, status="succeeded", step=8, total_steps=8)
    content = b"adapter weights " * 100
    with app.app_context():
        get_store().put(f"jobs/{job.id}/adapter/adapter_model.safetensors", io.BytesIO(content), len(content))
    in_db(make_artifact, job, name="adapter/adapter_model.safetensors",
          object_key=f"jobs/{job.id}/adapter/adapter_model.safetensors", size_bytes=len(content))
    html = browser.get(f"/jobs/{job.id}").get_data(as_text=True)
    link = f"/jobs/{job.id}/artifacts/adapter/adapter_model.safetensors"
    assert f'href="{link}" download hx-boost="false"' in html and "1.6 kB" in html
    download = browser.get(link)
    assert download.status_code == 200 and download.get_data() == content
    assert 'filename="adapter_model.safetensors"' in download.headers["Content-Disposition"]
    assert browser.get(f"/jobs/{job.id}/artifacts/missing.bin").status_code == 404


def test_pages_need_a_signed_in_user(client, owner, in_db):
    job = in_db(make_job, owner)
    for path in ("/jobs", "/jobs/new", f"/jobs/{job.id}", f"/jobs/{job.id}/progress", "/jobs/new/estimate"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_a_paused_job_says_so_without_an_eta_and_a_poll_sees_the_pause(browser, owner, in_db):
    job = in_db(running_job, owner, steps=30, total=120)
    first = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress"))
    assert 'id="job-paused"' not in first.get_data(as_text=True)
    in_db(lambda: Job.update(paused_at=utcnow()).where(Job.id == job.id).execute())
    paused = browser.get(f"/jobs/{job.id}/progress", headers={**htmx("job-progress"),
                                                               "If-None-Match": first.headers["ETag"]})
    body = paused.get_data(as_text=True)
    assert paused.status_code == 200, "the pause is part of the widget's version"
    assert 'id="job-paused"' in body and f"ftjob-{job.id}/resume" in body
    assert "<dt>ETA</dt><dd>—</dd>" in body
