"""The playground in a real Chromium: gunicorn, the playground worker, a real adapter; tokens appear as they come."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app import faults
from app.db import database
from app.extensions import get_store
from app.queue import redis_client
from tests.support.accounts import PASSWORD
from tests.support.playground import job_with_adapter, playground_worker
from tests.support.waiting import wait_until
from tests.support.web import gunicorn
from tests.ui.browser import Console, chromium, new_context, screenshot, sign_in

expect.set_options(timeout=30_000)
HOLD = "playground.first_text"


@pytest.fixture
def settings(settings):
    """No rate limits: the page polls the answers twice a second."""
    return settings.model_copy(update={"rate_limits_enabled": False})


def test_playground_streams_tokens_to_the_page_before_the_answer_is_complete(app, user, settings, tmp_path):
    with app.app_context(), database.connection_context():
        job = job_with_adapter(user, get_store(), tmp_path / "adapter")
    console = Console()
    # The tiny model can write its 400 tokens between two polls: the worker waits once its first text is saved,
    # until the page has shown it (app/faults.py).
    held = {faults.HOLDS: HOLD}
    with gunicorn(settings, tmp_path / "web.log") as web, playground_worker(settings, tmp_path / "pg.log", held), \
            chromium() as browser:
        page = new_context(browser, console, web.url).new_page()
        sign_in(page, user.email, PASSWORD)
        page.goto(f"/jobs/{job.id}/playground")
        page.get_by_label("Message").fill("Tell me a long story.")
        page.get_by_label("Max tokens").fill("400")
        page.get_by_label("Also ask the base model").check()
        page.get_by_role("button", name="Send").click()
        tuned = page.locator(".completion").first
        seen = wait_until(lambda: tuned.get_attribute("data-status") == "running"
                          and tuned.locator(".completion-text").inner_text() or None, 60, "the first tokens")
        faults.release(HOLD, redis_client(settings.redis_url))
        expect(tuned).to_have_attribute("data-status", "succeeded", timeout=120_000)
        final = tuned.locator(".completion-text").inner_text()
        expect(page.locator(".completion").nth(1)).to_have_attribute("data-status", "succeeded", timeout=120_000)
        screenshot(page, "desktop-playground")
        assert page.locator(".completion").count() == 2
    assert seen and len(final) > len(seen) and final.startswith(seen.strip()[:5])
    assert not console.problems, console.problems
