"""The dataset pages: upload, report polling, preview, search, delete, escaping (CSRF: tests/security/test_csrf.py)."""
from __future__ import annotations

import io

import pytest

from app.db import database
from app.models import Dataset
from tests.support.accounts import csrf_token_from, login
from tests.support.data import as_jsonl, examples
from tests.support.datasets import bucket_keys
from tests.support.factories import make_dataset

EVIL = '<script>alert("owned")</script>'


@pytest.fixture
def browser(client, owner):
    """A client signed in as the owner, with the CSRF token of its session."""
    assert login(client, owner.email).status_code == 302
    client.csrf = csrf_token_from(client.get("/datasets").get_data(as_text=True))
    return client


def form_upload(client, data: bytes, csrf: str, htmx: bool = False, **fields):
    """POST the upload form the way a browser does: the token first, the file last."""
    form = {"csrf_token": csrf, **fields, "file": (io.BytesIO(data), "upload.jsonl")}
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post("/datasets", data=form, content_type="multipart/form-data", headers=headers)


def test_empty_list_tells_the_user_what_to_do(browser):
    html = browser.get("/datasets").get_data(as_text=True)
    assert "No datasets yet. Upload a JSONL" in html and 'name="file"' in html


def test_form_upload_leads_to_the_detail_page_with_statistics_and_preview(browser):
    response = form_upload(browser, as_jsonl(examples("chat", 15)), browser.csrf, name="Sums")
    assert response.status_code == 303
    html = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "15 chat examples ready to train on" in html
    assert "Messages per example" in html and "What is 3 + 3?" in html
    assert 'hx-trigger="every 2s"' not in html


def test_htmx_upload_answers_with_a_location_to_open(browser):
    response = form_upload(browser, as_jsonl(examples("text")), browser.csrf, htmx=True)
    assert response.status_code == 201
    assert response.headers["HX-Location"].startswith("/datasets/")


def test_htmx_upload_with_a_bad_field_shows_the_problem_by_the_form(browser):
    response = form_upload(browser, as_jsonl(examples("text")), browser.csrf, htmx=True, format="xml")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<code>format</code>" in html and "<html" not in html


def test_names_and_records_full_of_html_are_shown_escaped(browser):
    location = form_upload(browser, as_jsonl([{"text": EVIL}] * 12), browser.csrf, name=EVIL).headers["Location"]
    for html in (browser.get(location).get_data(as_text=True), browser.get("/datasets").get_data(as_text=True)):
        assert EVIL not in html
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in html


def test_report_polls_while_processing_and_stops_when_done(app, browser, owner):
    with app.app_context(), database.connection_context():
        dataset = make_dataset(owner, status="processing")
    page = browser.get(f"/datasets/{dataset.id}").get_data(as_text=True)
    assert f'hx-get="/datasets/{dataset.id}/report" hx-trigger="every 2s"' in page
    assert browser.get(f"/datasets/{dataset.id}/report", headers={"HX-Request": "true"}).status_code == 200
    with app.app_context(), database.connection_context():
        Dataset.update(status="invalid", validation_errors={"errors": [], "error_counts": {}}).execute()
    finished = browser.get(f"/datasets/{dataset.id}/report", headers={"HX-Request": "true"})
    assert finished.status_code == 286
    assert "hx-trigger" not in finished.get_data(as_text=True)


def test_preview_pages_are_partials_for_htmx(browser):
    location = form_upload(browser, as_jsonl(examples("text", 25)), browser.csrf).headers["Location"]
    html = browser.get(f"{location}/preview?offset=20", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert html.startswith('<div id="dataset-preview">')
    assert "Examples 21–25 of 25" in html and "The double of 24" in html and "Next →" not in html


def test_search_returns_the_table_partial(browser):
    for name in ("needle one", "haystack"):
        form_upload(browser, as_jsonl(examples("text")), browser.csrf, name=name)
    html = browser.get("/datasets?q=needle", headers={"HX-Request": "true", "HX-Target": "dataset-table"})
    text = html.get_data(as_text=True)
    assert text.startswith('<div id="dataset-table">') and "needle one" in text and "haystack" not in text


def test_htmx_delete_removes_the_row_and_the_files(app, browser, settings):
    location = form_upload(browser, as_jsonl(examples("text")), browser.csrf).headers["Location"]
    response = browser.delete(location, headers={"HX-Request": "true", "X-CSRFToken": browser.csrf})
    assert response.status_code == 200 and response.get_data() == b""
    assert bucket_keys(settings) == []
    assert browser.get(location).status_code == 404
