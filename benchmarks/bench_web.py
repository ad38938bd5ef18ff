"""The pages under load: polls, the job page and the jobs list at 1k and 100k jobs, as ratios to a bare route.

gunicorn with the project's gunicorn.conf.py (2 workers, its threads) on a scratch PostgreSQL database and the
local Redis, rate limits off; each route is requested by 8 keep-alive connections for a second or two (like
`wrk -c8`), in three rounds that go through every route in turn; each route's median requests per second is
printed against `/api/v1/health/live` measured in the same rounds.
The rows are seeded with bulk SQL: one user with 1,000 jobs (one of them running, with 10,000 events), one with
100,000, a third with the running jobs below. The lists are read by keyset: first page, a middle one (`before=`)
and the last (`after=0`).
A changed poll's charts are drawn once per version (app/web/jobs/live.py): the repeated changed poll measures the
pages that see a version after the first; the first page's cost is measured on more running jobs (1,000 events
each) than a worker keeps charts of, polled in turn, so that every poll draws its charts.

    python benchmarks/bench_web.py          # BENCH_WEB_SECONDS per route and round (default 1.5)
"""
from __future__ import annotations

import html
import http.client
import itertools
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from app.auth import service as accounts  # noqa: E402
from app.db import database, upgrade  # noqa: E402
from app.factory import create_app  # noqa: E402
from app.web.jobs.live import CHART_VERSIONS  # noqa: E402
from tests.support.accounts import PASSWORD, csrf_token_from  # noqa: E402
from tests.support.database import scratch_postgres_database  # noqa: E402
from tests.support.settings import make_settings  # noqa: E402
from tests.support.web import gunicorn  # noqa: E402

SECONDS = float(os.environ.get("BENCH_WEB_SECONDS", "1.5"))
ROUNDS = 3
CONNECTIONS = 8
REDIS_URL = "redis://127.0.0.1:6379/13"
SIZES = (1_000, 100_000)
EVENTS = 10_000
# Running jobs polled in turn, more than a worker keeps charts of; each with this many events, the last 30 lines.
DRAWING_JOBS, DRAWING_EVENTS = CHART_VERSIONS + 44, 1_000

JOBS_SQL = """
INSERT INTO job (owner_id, name, base_model, method, backend, hyperparameters, status, step, total_steps, epoch,
                 stage, attempts, stage_attempts, remote_open, artifact_count, created_at, updated_at)
SELECT %s, 'bench job ' || g, 'tiny-random-llama', 'lora', 'local', '{}',
       (ARRAY['succeeded', 'failed', 'cancelled'])[1 + g %% 3], 100, 100, 1.0, 'done', 1, 0, false, 0, now(), now()
FROM generate_series(1, %s) AS g
"""
RUNNING_SQL = """
INSERT INTO job (owner_id, name, base_model, method, backend, hyperparameters, status, step, total_steps, epoch,
                 metrics, stage, attempts, stage_attempts, remote_open, artifact_count, created_at, started_at,
                 updated_at)
VALUES (%s, 'bench running job', 'tiny-random-llama', 'lora', 'local', '{}', 'running', 9000, 10000, 0.9,
        '{"loss": 0.5, "eta_seconds": 60}', 'run', 1, 0, false, 0, now(), now(), now())
RETURNING id
"""
# Nine metric points in ten, the rest log lines, as a long run reports them; each point numbered in its series
# as app/jobs/metric_points.py numbers them (position, and how many times 2 divides it).
EVENTS_SQL = """
INSERT INTO job_event (job_id, kind, message, data, series, point, level, created_at)
SELECT %s, CASE WHEN g %% 10 = 0 THEN 'log' ELSE 'metric' END, 'line ' || g,
       CASE WHEN g %% 10 = 0 THEN NULL
            ELSE jsonb_build_object('type', 'progress', 'step', g, 'loss', 2.0 / (1 + g / 500.0)) END,
       CASE WHEN g %% 10 = 0 THEN NULL ELSE 'progress' END,
       CASE WHEN g %% 10 = 0 THEN NULL ELSE g - g / 10 END,
       CASE WHEN g %% 10 = 0 THEN NULL ELSE LEAST(20, floor(log(2, ((g - g / 10) & -(g - g / 10))::numeric))) END,
       now()
FROM generate_series(1, %s) AS g
"""
# The running jobs polled in turn (a third user's), and their events: metric points, then 30 log lines.
DRAWING_JOBS_SQL = """
INSERT INTO job (owner_id, name, base_model, method, backend, hyperparameters, status, step, total_steps, epoch,
                 metrics, stage, attempts, stage_attempts, remote_open, artifact_count, created_at, started_at,
                 updated_at)
SELECT %s, 'bench drawn job ' || g, 'tiny-random-llama', 'lora', 'local', '{}', 'running', 970, 1000, 0.97,
       '{"loss": 0.5, "eta_seconds": 60}', 'run', 1, 0, false, 0, now(), now(), now()
FROM generate_series(1, %s) AS g
RETURNING id
"""
DRAWING_EVENTS_SQL = """
INSERT INTO job_event (job_id, kind, message, data, series, point, level, created_at)
SELECT job.id, CASE WHEN g > %(points)s THEN 'log' ELSE 'metric' END, 'line ' || g,
       CASE WHEN g > %(points)s THEN NULL
            ELSE jsonb_build_object('type', 'progress', 'step', g, 'loss', 2.0 / (1 + g / 500.0)) END,
       CASE WHEN g > %(points)s THEN NULL ELSE 'progress' END,
       CASE WHEN g > %(points)s THEN NULL ELSE g END,
       CASE WHEN g > %(points)s THEN NULL ELSE LEAST(20, floor(log(2, (g & -g)::numeric))) END, now()
FROM unnest(%(jobs)s) AS job(id), generate_series(1, %(events)s) AS g ORDER BY job.id, g
"""
# The jobs' marks of their last log line and metric point, as app/jobs/events.py keeps them.
MARKS_SQL = """
UPDATE job SET last_log_id = (SELECT MAX(id) FROM job_event WHERE job_id = job.id AND kind = 'log'),
               last_point_id = (SELECT MAX(id) FROM job_event WHERE job_id = job.id AND kind = 'metric')
WHERE id = ANY(%s)
"""
# Each drawing job's cursor: a page with none of its last 30 lines, and no chart.
DRAWING_CURSORS_SQL = """
SELECT job_id, MIN(id) - 1 FROM job_event WHERE job_id = ANY(%s) AND kind = 'log' GROUP BY job_id ORDER BY job_id
"""


def seed(settings) -> dict:
    """Two users (1k and 100k jobs) and a running job with 10k events, in bulk; returns their emails and ids."""
    app = create_app(settings)
    with app.app_context(), database.connection_context():
        upgrade()
        users = {size: accounts.create_user(f"bench{size}@example.com", PASSWORD) for size in SIZES}
        for size, user in users.items():
            database.execute_sql(JOBS_SQL, (user.id, size - (size == SIZES[0])))
        running = database.execute_sql(RUNNING_SQL, (users[SIZES[0]].id,)).fetchone()[0]
        database.execute_sql(EVENTS_SQL, (running, EVENTS))
        drawer = accounts.create_user("bench-drawn@example.com", PASSWORD)
        drawing = [row[0] for row in database.execute_sql(DRAWING_JOBS_SQL, (drawer.id, DRAWING_JOBS))]
        database.execute_sql(DRAWING_EVENTS_SQL, {"points": DRAWING_EVENTS - 30, "jobs": drawing,
                                                  "events": DRAWING_EVENTS})
        database.execute_sql(MARKS_SQL, ([running, *drawing],))
        cursors = database.execute_sql(DRAWING_CURSORS_SQL, (drawing,)).fetchall()
        database.execute_sql("ANALYZE")
        middles = {size: database.execute_sql(
            "SELECT id FROM job WHERE owner_id = %s ORDER BY id DESC OFFSET %s LIMIT 1",
            (user.id, size // 2)).fetchone()[0] for size, user in users.items()}
    drawn = [f"/jobs/{job}/progress?after={after}&points=0&files=0" for job, after in cursors]
    return {"emails": {size: user.email for size, user in users.items()}, "running": running, "middles": middles,
            "drawn": drawn, "drawer": drawer.email}


class Client:
    """One keep-alive connection with a session cookie."""

    def __init__(self, port: int, cookie: str = ""):
        """Connect to the server on port."""
        self.connection, self.cookie = http.client.HTTPConnection("127.0.0.1", port, timeout=30), cookie

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        """GET path; (status, headers, body)."""
        self.connection.request("GET", path, headers={"Cookie": self.cookie, **(headers or {})})
        response = self.connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()

    def sign_in(self, email: str) -> str:
        """Sign in through the form; returns the session cookie."""
        self.connection.request("GET", "/login")
        response = self.connection.getresponse()
        body = response.read()
        self.cookie = "; ".join(value.split(";", 1)[0] for value in response.msg.get_all("Set-Cookie"))
        form = urlencode({"email": email, "password": PASSWORD, "csrf_token": csrf_token_from(body.decode())})
        self.connection.request("POST", "/login", body=form, headers={
            "Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"})
        response = self.connection.getresponse()
        response.read()
        assert response.status == 302, response.status
        cookies = [value.split(";", 1)[0] for value in response.msg.get_all("Set-Cookie")]
        self.cookie = "; ".join(cookies)
        return self.cookie


def rate(port: int, cookie: str, path: str | list[str], headers: dict, expected: int) -> float:
    """Requests per second of CONNECTIONS connections requesting path (or the paths in turn) for SECONDS."""
    done, stop, paths = [0] * CONNECTIONS, time.monotonic() + SECONDS, [path] if isinstance(path, str) else path
    turn = itertools.count()

    def run(index: int) -> None:
        client = Client(port, cookie)
        while time.monotonic() < stop:
            status, _headers, _body = client.get(paths[next(turn) % len(paths)], headers)
            assert status == expected, (path, status)
            done[index] += 1

    threads = [threading.Thread(target=run, args=(index,)) for index in range(CONNECTIONS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def poll_paths(client: Client, job_id: int) -> dict:
    """The poll as the page makes it (current cursor, with its ETag), one behind (a changed poll), and one
    from scratch (everything: what every poll sent before polls answered from a version)."""
    page = client.get(f"/jobs/{job_id}")[2].decode()
    current = html.unescape(re.search(r'id="job-progress"[^>]*hx-get="([^"]+)"', page).group(1))
    after, points = (int(value) for value in re.search(r"after=(\d+)&points=(\d+)", current).groups())
    behind = current.replace(f"after={after}", f"after={after - 30}").replace(f"points={points}",
                                                                             f"points={points - 1}")
    etag = client.get(current, {"HX-Request": "true"})[1]["ETag"]
    return {"current": current, "etag": etag, "behind": behind, "scratch": f"/jobs/{job_id}/progress"}


def measure(port: int, seeded: dict) -> tuple[list, dict]:
    """Every route's rate and the bytes of each kind of poll."""
    cookies = {size: Client(port).sign_in(email) for size, email in seeded["emails"].items()}
    small, htmx, drawer = cookies[SIZES[0]], {"HX-Request": "true"}, Client(port).sign_in(seeded["drawer"])
    polls = poll_paths(Client(port, small), seeded["running"])
    routes = [("bare route: GET /api/v1/health/live", "", "/api/v1/health/live", {}, 200),
              ("unchanged poll (304)", small, polls["current"], {**htmx, "If-None-Match": polls["etag"]}, 304),
              ("changed poll (new lines and points)", small, polls["behind"], htmx, 200),
              ("changed poll, charts drawn (the first page)", drawer, seeded["drawn"], htmx, 200),
              ("full poll (everything, as every poll was)", small, polls["scratch"], htmx, 200),
              ("job page (10k events)", small, f"/jobs/{seeded['running']}", {}, 200)]
    for size in SIZES:
        for name, query in (("first", ""), ("middle", f"?before={seeded['middles'][size]}"), ("last", "?after=0")):
            routes.append((f"jobs list, {size // 1000}k jobs, {name} page", cookies[size], f"/jobs{query}", {}, 200))
    # Rounds interleaved, each route's median kept: a busy moment of the machine then lands in one round of every
    # route instead of in all of one route's.
    rounds = [[rate(port, cookie, path, headers, status) for _name, cookie, path, headers, status in routes]
              for _round in range(ROUNDS)]
    rates = [(route[0], statistics.median(measured))
             for route, measured in zip(routes, zip(*rounds, strict=True), strict=True)]
    client = Client(port, small)
    sizes = {name: len(client.get(path, headers)[2]) for name, path, headers in (
        ("unchanged", polls["current"], {**htmx, "If-None-Match": polls["etag"]}),
        ("changed", polls["behind"], htmx), ("full", polls["scratch"], htmx))}
    return rates, sizes


def print_tables(rates: list, sizes: dict) -> None:
    """Rates as ratios to the bare route; 100k/1k per list page; bytes per poll."""
    bare = rates[0][1]
    print(f"\nWeb under load: gunicorn.conf.py (2 workers), PostgreSQL, {CONNECTIONS} connections, "
          f"median of {ROUNDS} rounds of {SECONDS:g} s")
    print(f"{'route':46} {'req/s':>8} {'vs bare':>8}")
    for name, value in rates:
        print(f"{name:46} {value:8.1f} {value / bare:8.2f}")
    by_name = dict(rates)
    print(f"\n{'jobs list page':12} {'1k req/s':>9} {'100k req/s':>11} {'1k/100k time':>13}  (target ≤ 1.2)")
    for page in ("first", "middle", "last"):
        one, hundred = by_name[f"jobs list, 1k jobs, {page} page"], by_name[f"jobs list, 100k jobs, {page} page"]
        print(f"{page:12} {one:9.1f} {hundred:11.1f} {one / hundred:13.2f}")
    print(f"\n{'bytes per poll':46} {'bytes':>8}")
    print(f"{'before: every poll sent everything':46} {sizes['full']:8d}")
    print(f"{'after: unchanged (304, empty)':46} {sizes['unchanged']:8d}")
    print(f"{'after: changed (30 lines, the chart)':46} {sizes['changed']:8d}")


def main() -> None:
    """Seed, serve, measure, print."""
    with tempfile.TemporaryDirectory(prefix="bench-web-") as folder, scratch_postgres_database() as url:
        settings = make_settings(Path(folder), url, REDIS_URL, rate_limits_enabled=False, log_level="WARNING")
        seeded = seed(settings)
        with gunicorn(settings, Path(folder) / "web.log") as server:
            rates, sizes = measure(server.port, seeded)
    print_tables(rates, sizes)


if __name__ == "__main__":
    main()
