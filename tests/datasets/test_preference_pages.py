"""The dataset page of a preference dataset: pair statistics, warnings with lines, the answers side by side."""
from __future__ import annotations

import io

import pytest

from tests.support.accounts import csrf_token_from, login
from tests.support.data import as_jsonl, preference_pair


@pytest.fixture
def browser(client, owner):
    """A client signed in as the owner, with the CSRF token of its session."""
    assert login(client, owner.email).status_code == 302
    client.csrf = csrf_token_from(client.get("/datasets").get_data(as_text=True))
    return client


def test_preference_dataset_page_shows_pair_statistics_warnings_and_both_answers(browser):
    records = [preference_pair(i) for i in range(12)]
    records[3] = {"prompt": "Say yes.", "chosen": "yes", "rejected": "yes"}
    form = {"csrf_token": browser.csrf, "name": "Pairs", "file": (io.BytesIO(as_jsonl(records)), "pairs.jsonl")}
    response = browser.post("/datasets", data=form, content_type="multipart/form-data")
    html = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "12 preference examples ready to train on" in html
    assert "Chosen answer is the longer one" in html and "Rejected answer tokens" in html
    assert "Warnings" in html and "<td>4</td><td>the chosen and rejected answers are identical" in html
    preview = browser.get(f"{response.headers['Location']}/preview", headers={"HX-Request": "true"})
    body = preview.get_data(as_text=True)
    side_by_side = body.split('<div class="pair">')[3]
    assert '<section class="pair-side pair-chosen"><h4>Chosen</h4>' in side_by_side
    chosen, rejected = side_by_side.split('<section class="pair-side pair-rejected">')[:2]
    assert "<p>4</p>" in chosen and "<p>5</p>" in rejected, "the third pair: 2 + 2 is 4, not 5"
