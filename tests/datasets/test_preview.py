"""Bounded answers: the preview truncates long records and links to them whole, and reads only the page it shows."""
from __future__ import annotations

import json

from app.datasets import service
from app.db import database
from app.models import Dataset
from tests.support.accounts import login
from tests.support.data import as_jsonl, examples
from tests.support.datasets import upload


def count_reads(store) -> dict:
    """Count the bytes the store's downloads deliver from now on (the way app/metrics.py times them)."""
    counted, download = {"bytes": 0}, store.iter_chunks

    def iter_chunks(*args, **kwargs):
        chunks = download(*args, **kwargs)

        def counting():
            for chunk in chunks:
                counted["bytes"] += len(chunk)
                yield chunk

        return type(chunks)(counting(), chunks.close)

    store.iter_chunks = iter_chunks
    return counted


def test_preview_truncates_long_content_and_links_to_the_whole_record(client, headers):
    records = [{"text": f"{index} " + "y" * 5000} for index in range(12)]
    body = upload(client, headers, as_jsonl(records)).get_json()
    response = client.get(f"/api/v1/datasets/{body['id']}/preview?limit=100", headers=headers)
    page = response.get_json()
    assert len(response.data) < 12 * 2500, "each record shows a bounded part of its content"
    assert page["data"][3]["text"].startswith("3 yyy") and page["data"][3]["text"].endswith("more characters]")
    href = page["meta"]["truncated"][3]["href"]
    assert href == f"/api/v1/datasets/{body['id']}/records/3" and page["meta"]["truncated"][3]["index"] == 3
    whole = client.get(href, headers=headers).get_json()
    assert whole == {"index": 3, "record": records[3]}


def test_whole_record_past_the_end_is_404_and_not_yet_validated_is_409(client, headers):
    body = upload(client, headers, as_jsonl(examples("text"))).get_json()
    assert client.get(f"/api/v1/datasets/{body['id']}/records/12", headers=headers).status_code == 404
    assert client.get(f"/api/v1/datasets/{body['id']}/records/11", headers=headers).status_code == 200
    invalid = upload(client, headers, b"nope\n").get_json()
    answer = client.get(f"/api/v1/datasets/{invalid['id']}/records/0", headers=headers)
    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "conflict"


def test_chat_preview_keeps_messages_within_the_record_budget(client, headers):
    messages = [{"role": "user", "content": f"question {i} " + "q" * 300} for i in range(15)]
    record = {"messages": [*messages, {"role": "assistant", "content": "answer"}]}
    body = upload(client, headers, as_jsonl([record] * 12)).get_json()
    page = client.get(f"/api/v1/datasets/{body['id']}/preview?limit=12", headers=headers).get_json()
    shown = page["data"][0]["messages"]
    assert len(json.dumps(shown)) < 3000 and shown[0]["content"].startswith("question 0 ")
    assert len(page["meta"]["truncated"]) == 12


def test_preview_reads_the_page_it_shows_not_the_records_before_it(app, client, headers, settings):
    data = as_jsonl(examples("prompt_completion", 5000))
    response = upload(client, headers, data)
    assert response.status_code == 202, "too large to validate during the upload"
    store = app.extensions["store"]
    with app.app_context(), database.connection_context():
        dataset = Dataset.get_by_id(response.get_json()["id"])
        assert service.run_validation(dataset, store, settings.dataset_max_record_bytes).status == "ready"
    counted = count_reads(store)
    page = client.get(f"/api/v1/datasets/{dataset.id}/preview?offset=4990&limit=5", headers=headers).get_json()
    assert counted["bytes"] < len(data) // 50, f"read {counted['bytes']} of {len(data)} bytes"
    assert [record["prompt"] for record in page["data"]] == [f"{i} + {i} =" for i in range(4990, 4995)]


def test_page_preview_links_a_truncated_record_to_its_whole_page(client, headers, owner):
    records = [{"text": "z" * 5000 + " end"} for _ in range(12)]
    body = upload(client, headers, as_jsonl(records)).get_json()
    assert login(client, owner.email).status_code == 302
    html = client.get(f"/datasets/{body['id']}").get_data(as_text=True)
    assert "z" * 5000 not in html and f"/datasets/{body['id']}/records/0" in html
    whole = client.get(f"/datasets/{body['id']}/records/0").get_data(as_text=True)
    assert "z" * 5000 + " end" in whole
