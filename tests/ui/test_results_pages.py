"""The results section of a job page, its zip download, and the compare page for three jobs."""
from __future__ import annotations

import io
import re

from app.extensions import get_store
from app.models import Checkpoint
from tests.support.factories import add_history, make_artifact, make_dataset, make_job
from tests.support.judging import sample, stored_samples, zip_digests
from tests.support.pages import htmx


def succeeded_job(owner, learning_rate: float, answers: dict[str, str], **fields):
    """A succeeded job with a loss history, final metrics and samples answering each prompt."""
    job = make_job(owner, fields.pop("dataset", None), status="succeeded", stage="done", step=20, total_steps=20,
                   hyperparameters={"learning_rate": learning_rate, "epochs": 1},
                   metrics={"loss": learning_rate * 100, "eval_loss": 0.5, "eval_accuracy": 0.75}, **fields)
    add_history(job, steps=20, evals=2, logs=1)
    stored_samples(get_store(), job, [sample(prompt, answer, reference="ok") for prompt, answer in answers.items()])
    return job


def test_results_show_samples_side_by_side_checkpoints_and_downloads(browser, owner, in_db):
    job = in_db(succeeded_job, owner, 0.001, {"Say hi.": "hi!"})
    in_db(Checkpoint.create, job=job, step=10, artifact="checkpoint_adapters/step-00000010",
          metrics={"train_loss": 0.9, "valid_loss": 1.1, "valid_mean_token_accuracy": 0.5, "valid_perplexity": 3.0})
    page = browser.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert f'hx-get="/jobs/{job.id}/results" hx-trigger="load"' in page
    html = browser.get(f"/jobs/{job.id}/results", headers=htmx("job-results")).get_data(as_text=True)
    assert "hx-trigger" not in html, "a finished job's results do not poll"
    assert re.search(r'class="sample-reference">ok<.*class="sample-base">zzz<.*class="sample-tuned">hi!<', html, re.S)
    assert "50.0%" in html and "3.000" in html
    assert f'href="/jobs/{job.id}/artifacts.zip?prefix=checkpoint_adapters/step-00000010/"' in html
    assert f'href="/jobs/{job.id}/artifacts.zip"' in html


def test_a_checkpoint_without_validation_metrics_shows_dashes(browser, owner, in_db):
    job = in_db(succeeded_job, owner, 0.001, {"Say hi.": "hi!"})
    in_db(Checkpoint.create, job=job, step=20, artifact="adapter", metrics={"train_loss": 0.9})
    response = browser.get(f"/jobs/{job.id}/results", headers=htmx("job-results"))
    assert response.status_code == 200
    assert re.search(r"<td>20</td>\s*<td>0.9000</td>\s*<td>–</td>\s*<td>–</td>\s*<td>–</td>",
                     response.get_data(as_text=True))


def test_results_of_a_running_job_ask_again_until_it_ends(browser, owner, in_db):
    job = in_db(make_job, owner, status="running", stage="run")
    html = browser.get(f"/jobs/{job.id}/results", headers=htmx("job-results")).get_data(as_text=True)
    assert 'hx-trigger="every 5s"' in html and "When training ends" in html


def test_page_zip_download_streams_every_artifact(browser, owner, in_db):
    job = in_db(make_job, owner, status="succeeded")
    for name, content in (("adapter/a.bin", b"a" * 3000), ("metrics.json", b"{}")):
        in_db(lambda n=name, c=content: get_store().put(f"jobs/{job.id}/{n}", io.BytesIO(c), len(c)))
        in_db(make_artifact, job, name, size_bytes=len(content))
    response = browser.get(f"/jobs/{job.id}/artifacts.zip")
    assert response.status_code == 200 and "job-" in response.headers["Content-Disposition"]
    assert set(zip_digests(response.get_data())) == {"adapter/a.bin", "metrics.json"}


def test_compare_three_jobs_overlays_curves_diffs_settings_and_lines_up_samples(browser, owner, in_db):
    dataset = in_db(make_dataset, owner)
    jobs = [in_db(succeeded_job, owner, rate, {"Say hi.": f"hi from {index}", f"Only {index}.": "x"}, dataset=dataset)
            for index, rate in enumerate((0.001, 0.002, 0.003))]
    ids = ",".join(str(job.id) for job in jobs)
    html = browser.get(f"/compare?jobs={ids}").get_data(as_text=True)
    assert len(re.findall(r'<polyline class="chart-line compare-series-\d"', html)) == 3
    assert len(re.findall(r'class="chart-line compare-eval', html)) == 3
    rows = re.findall(r'<tr class="(diff-row|same-row)"><th scope="row">([^<]+)</th>', html)
    assert rows[0] == ("diff-row", "Learning rate") and all(kind == "same-row" for kind, _ in rows[1:])
    assert ("same-row", "Base model") in rows and ("same-row", "LoRA rank") in rows
    assert "0.1" in html and "0.3" in html  # the final losses
    assert '<th scope="row">Training loss</th>' in html and "(succeeded)</label>" in html
    hi = html.index("Say hi.")
    assert html.index("hi from 0", hi) < html.index("hi from 1", hi) < html.index("hi from 2", hi)
    assert browser.get(f"/compare?jobs={ids},900001,900002,900003").status_code == 422
    other = browser.get("/compare?jobs=999999")
    assert other.status_code == 404


def test_the_compare_page_names_metrics_settings_and_statuses_in_the_users_language(translations, browser, owner,
                                                                                     in_db):
    dataset = in_db(make_dataset, owner)
    jobs = [in_db(succeeded_job, owner, rate, {"Say hi.": "hi"}, dataset=dataset) for rate in (0.001, 0.002)]
    html = browser.get(f"/compare?jobs={jobs[0].id},{jobs[1].id}",
                       headers={"Accept-Language": "es"}).get_data(as_text=True)
    rows = re.findall(r'<tr class="(diff-row|same-row)"><th scope="row">([^<]+)</th>', html)
    assert rows[0] == ("diff-row", "Tasa de aprendizaje") and ("same-row", "Modelo base") in rows
    assert '<th scope="row">Pérdida de entrenamiento</th>' in html and "learning rate" not in html
    assert "(completado)</label>" in html
