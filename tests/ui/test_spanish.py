"""The Studio in Spanish on a phone, in a real Chromium served by gunicorn with real workers training the tiny model.

An English browser picks Español in the footer, signs in, uploads a file with a broken line (the problem in
Spanish, on its line), uploads a good one, starts a job on the local backend and watches it finish: every page in
Spanish, screenshotted, and none wider than the phone's screen.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.accounts import PASSWORD
from tests.support.data import as_jsonl, learnable_chats
from tests.support.web import gunicorn
from tests.support.workers import worker_pool
from tests.ui.browser import Console, chromium, horizontal_overflow, new_context, screenshot

TRAINING_MS = 180_000  # the tiny model on a busy shared machine
expect.set_options(timeout=20_000)
GOOD = as_jsonl(learnable_chats(24))
BAD = as_jsonl(learnable_chats(2)) + b'{"messages": [oops\n' + as_jsonl(learnable_chats(12, seed=1))
FAST = {"#hp-batch-size": "4", "#hp-max-seq-length": "64", "#hp-gradient-accumulation-steps": "1",
        "#hp-max-steps": "12", "#hp-logging-steps": "1", "#hp-eval-steps": "100", "#hp-save-steps": "1000",
        "#hp-learning-rate": "0.01", "#hp-lora-r": "4", "#hp-lora-alpha": "8"}


@pytest.fixture
def settings(s3_settings):
    """Production-shaped services (PostgreSQL, S3, Redis), no rate limits (one browser sends everything)."""
    return s3_settings.model_copy(update={"rate_limits_enabled": False, "worker_pool_size": 2})


@pytest.fixture
def studio(app, settings, tmp_path, translations):
    """The app under gunicorn and a pool of two workers; yields the base URL."""
    with gunicorn(settings, tmp_path / "web.log") as server, worker_pool(settings, tmp_path / "worker.log",
                                                                         pool_size=2):
        yield server.url


def seen(page, name: str, widths: dict) -> None:
    """Check the page is in Spanish, screenshot it and record how far it sticks out sideways."""
    expect(page.locator("html")).to_have_attribute("lang", "es")
    screenshot(page, f"phone-es-{name}")
    widths[name] = horizontal_overflow(page)


def upload(page, content: bytes, name: str, widths: dict) -> str:
    """Upload a file with the Spanish dataset form and land on its page; returns the dataset's id."""
    page.goto("/datasets")
    if not page.locator("#upload-form").is_visible():
        page.get_by_text("Subir un conjunto de datos").click()
    seen(page, "datasets", widths)
    page.get_by_label("Nombre", exact=True).fill(name)
    page.locator("#upload-file").set_input_files({"name": f"{name}.jsonl", "mimeType": "application/x-ndjson",
                                                  "buffer": content})
    page.get_by_role("button", name="Subir y validar").click()
    expect(page).to_have_url(re.compile(r"/datasets/\d+$"))
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    return page.url.rsplit("/", 1)[1]


def test_sign_in_upload_train_and_watch_in_spanish_on_a_phone(studio, user):
    console, widths = Console(), {}
    with chromium() as browser:
        context = new_context(browser, console, studio, phone=True, locale="en-US")
        page = context.new_page()
        page.goto("/login")
        expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
        page.get_by_role("button", name="Español").click()
        expect(page.get_by_role("heading", name="Iniciar sesión", level=1)).to_be_visible()
        seen(page, "login", widths)
        page.get_by_label("Correo electrónico").fill(user.email)
        page.get_by_label("Contraseña").fill(PASSWORD)
        # A proxy's error page (no message of ours to show): studio.js says so in the page's language.
        page.route("**/dashboard/health", lambda route: route.fulfill(status=502, body="bad gateway"))
        page.get_by_role("button", name="Iniciar sesión").click()
        expect(page.get_by_role("heading", name="Panel", level=1)).to_be_visible()
        expect(page.locator("#flash")).to_have_text("La solicitud falló (502). Vuelve a intentarlo en un momento.")
        page.unroute("**/dashboard/health")
        seen(page, "dashboard", widths)

        upload(page, BAD, "chats rotos", widths)
        report = page.locator("#dataset-report")
        expect(report).to_contain_text("Aún no se puede entrenar con este conjunto de datos")
        problem = page.locator("table.problems tbody tr").first
        expect(problem.locator("td").first).to_have_text("3")
        expect(problem.locator("td").nth(1)).to_have_text(re.compile(r"^JSON no válido: se esperaba un valor "
                                                                     r"\(columna \d+\)$"))
        expect(report.locator(".badge").first).to_have_text("no válido")
        seen(page, "dataset-invalid", widths)

        good = upload(page, GOOD, "saludos", widths)
        expect(page.locator("#dataset-report")).to_contain_text("24 ejemplos de chat listos para entrenar.")
        expect(page.locator("#dataset-preview")).to_contain_text("Ejemplo 1")
        seen(page, "dataset-ready", widths)

        page.goto("/jobs")
        seen(page, "jobs-empty", widths)
        page.get_by_role("button", name="Nuevo trabajo").click()
        expect(page.get_by_role("heading", name="Nuevo trabajo de ajuste fino")).to_be_visible()
        page.get_by_label("Modelo", exact=True).select_option("tiny-random-llama")
        expect(page.locator("#memory-estimate")).to_contain_text("cabe en una T4 de 16 GB")
        page.get_by_text("Prueba rápida").click()
        expect(page.locator("#hp-max-seq-length")).to_have_value("512")
        page.get_by_label("Conjunto de datos de entrenamiento").select_option(good)
        page.get_by_role("textbox", name="Nombre").fill("saludador")
        page.get_by_text("Ajustes avanzados").click()
        for selector, value in FAST.items():
            page.locator(selector).fill(value)
        seen(page, "new-job", widths)
        page.get_by_role("button", name="Empezar a entrenar").click()

        expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
        expect(page.locator("#flash")).to_contain_text("Trabajo «saludador» en cola.")
        status = page.locator("#job-status")
        expect(status).to_have_text("completado", timeout=TRAINING_MS)
        expect(page.locator("#job-artifacts")).to_contain_text("Descargar")
        expect(page.locator("#job-chart figcaption")).to_contain_text("Pérdida de entrenamiento (")
        seen(page, "job-succeeded", widths)

        for name, path in {"jobs": "/jobs", "dashboard-after": "/", "settings": "/settings/tokens"}.items():
            page.goto(path)
            seen(page, name, widths)
        context.close()
    assert widths == dict.fromkeys(widths, 0), widths
    assert [problem for problem in console.problems if "502" not in problem] == [], "\n".join(console.problems)
    assert console.failed_loads == [("/dashboard/health", 502)]
