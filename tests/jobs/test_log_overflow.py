"""Log lines past a job's cap: compressed log artifacts in object storage, paged back; metric points stay events."""
from __future__ import annotations

import gzip

from app.db import database
from app.extensions import get_store
from app.jobs import log_overflow
from app.jobs.progress import apply_output
from app.models import Artifact, JobEvent
from app.web.jobs.views import loss_points
from tests.support.factories import make_job
from trainer.protocol import PROGRESS_PREFIX


def progress(step: int) -> str:
    """A progress line of the training program."""
    return PROGRESS_PREFIX + f'{{"type": "progress", "step": {step}, "total_steps": 10, "loss": {1 / step}}}'


def test_lines_past_the_cap_go_to_compressed_artifacts_and_page_back(app, client, make_user, make_token):
    owner = make_user()
    with app.app_context(), database.connection_context():
        job = make_job(owner, status="running")
        keep = log_overflow.keeper(get_store(), job)
        kept = apply_output(job, ["line 1", progress(1), "line 2", "line 3", "line 4", progress(2), "line 5"],
                            0, cap=3, overflow=keep)
        kept += apply_output(job, ["line 6", progress(3), "line 7", "line 8"], kept, cap=3, overflow=keep)
        events = list(JobEvent.select().where(JobEvent.job == job.id).order_by(JobEvent.id))
        chunks = list(Artifact.select().where(Artifact.job == job.id).order_by(Artifact.name))
        train, _evaluation = loss_points(job)
        whole = gzip.decompress(b"".join(get_store().iter_chunks(chunks[0].object_key))).decode()
    assert kept == 3 and [e.message for e in events if e.kind == "log"] == ["line 1", "line 2", "line 3"]
    assert [step for step, _loss in train] == [1, 2, 3], "metric points stay events, and the chart reads them"
    assert [c.name for c in chunks] == ["logs/overflow-000000001-000000002.jsonl.gz",
                                        "logs/overflow-000000003-000000005.jsonl.gz"]
    assert '"line": 1' in whole and '"message": "line 4"' in whole and "line 6" not in whole

    headers = {"Authorization": f"Bearer {make_token(owner)}"}
    page = client.get(f"/api/v1/jobs/{job.id}/log-overflow?after=1&limit=3", headers=headers).get_json()
    assert [(line["line"], line["message"]) for line in page["data"]] == [(2, "line 5"), (3, "line 6"),
                                                                          (4, "line 7")]
    assert page["meta"] == {"after": 1, "last_line": 4}
    rest = client.get(f"/api/v1/jobs/{job.id}/log-overflow?after=4", headers=headers).get_json()
    assert [line["message"] for line in rest["data"]] == ["line 8"]
    other = {"Authorization": f"Bearer {make_token(make_user())}"}
    assert client.get(f"/api/v1/jobs/{job.id}/log-overflow", headers=other).status_code == 404


def test_without_an_overflow_lines_past_the_cap_are_dropped(app, make_user):
    with app.app_context(), database.connection_context():
        job = make_job(make_user(), status="running")
        assert apply_output(job, ["a", "b", "c"], 0, cap=1) == 1
        assert JobEvent.select().where(JobEvent.job == job.id).count() == 1
