"""Pages with the Kaggle backend enabled: the GPU quota on the dashboard and the memory override on the form."""
from __future__ import annotations

import pytest

from tests.kaggle_emulator import KaggleEmulator
from tests.support.factories import make_dataset
from tests.support.kaggle import KAGGLE_KEY, KAGGLE_USER, point_client_at
from tests.support.pages import htmx
from tests.ui.test_job_pages import form_for


@pytest.fixture
def settings(settings, tmp_path):
    """Both backends, with alice's Kaggle account (on the emulator when a test starts one)."""
    return settings.model_copy(update={"training_backends": "local,kaggle", "kaggle_username": KAGGLE_USER,
                                       "kaggle_key": KAGGLE_KEY, "kaggle_config_dir": tmp_path / "kaggle-config",
                                       "kaggle_shared_account": True})


@pytest.fixture
def kaggle(tmp_path, monkeypatch):
    """The Kaggle emulator, with this process's client pointed at it."""
    with KaggleEmulator(tmp_path / "kaggle", {KAGGLE_USER: KAGGLE_KEY}) as emulator:
        point_client_at(emulator, monkeypatch, tmp_path / "kaggle-config")
        yield emulator


def test_dashboard_loads_the_kaggle_quota_after_the_page_and_caches_it(browser, kaggle):
    kaggle.set_quota(used_hours=12.5, limit_hours=30)
    page = browser.get("/").get_data(as_text=True)
    assert 'hx-get="/dashboard/quota" hx-trigger="load"' in page and "12.5 h" not in page
    first = browser.get("/dashboard/quota", headers=htmx("gpu-quota")).get_data(as_text=True)
    assert "<strong>12.5 h</strong> of 30 h used this week" in first and 'max="30.0"' in first
    assert browser.get("/dashboard/quota", headers=htmx("gpu-quota")).get_data(as_text=True) == first
    assert kaggle.calls("GetAcceleratorQuotaStatistics") == 1


def test_quota_is_unknown_when_kaggle_fails_and_the_dashboard_still_answers(browser, kaggle):
    kaggle.fail("GetAcceleratorQuotaStatistics", status=503, times=10)
    assert browser.get("/").status_code == 200
    response = browser.get("/dashboard/quota", headers=htmx("gpu-quota"))
    assert response.status_code == 200 and "<strong>unknown</strong>" in response.get_data(as_text=True)


def test_kaggle_job_that_will_not_fit_needs_the_override(browser, owner, in_db):
    dataset = in_db(make_dataset, owner)
    form = form_for(dataset.id, base_model="qwen2.5-3b-instruct", method="full", backend="kaggle",
                    max_seq_length="2048", csrf_token=browser.csrf)
    refused = browser.post("/jobs", data=form, headers=htmx("job-form"))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "The model may not fit the GPU" in html
    assert 'name="ignore_memory_warning" value="true" data-estimate' in html and 'id="override-error"' in html
    accepted = browser.post("/jobs", data={**form, "ignore_memory_warning": "true"}, headers=htmx("job-form"))
    assert accepted.status_code == 201
