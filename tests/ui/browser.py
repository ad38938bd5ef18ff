"""Drive Debian's Chromium with Playwright (never a downloaded browser), recording every console error and CSP
violation, and saving screenshots outside the repository."""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
# Screenshots are CI output, never committed: UI_SCREENSHOT_DIR, else a folder in the system's temp directory.
SCREENSHOT_DIR = Path(os.environ.get("UI_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "studio-ui-screenshots")
# The browser reports CSP violations on the console; this makes sure each one is reported, whatever Chromium's wording.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline code"}`);
});
"""
FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")
# A progress bar's value strictly between 0 and 100: training has started and is not over.
MID_RUN = re.compile(r"^(?:[1-9]\d?(?:\.\d+)?|0\.\d*[1-9]\d*)$")


class Console:
    """Every console error, uncaught page error and CSP violation of a browser context.

    Chromium also logs each HTTP error answer as a console error ("Failed to load resource"); those are kept apart
    in failed_loads as (path, status), so a test can tell an answer it asked for (a 422 form) from a real failure.
    """

    def __init__(self):
        self.problems: list[str] = []
        self.failed_loads: list[tuple[str, int]] = []

    def watch(self, context) -> None:
        """Listen to the context's pages."""
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))

    def _console(self, message) -> None:
        failed = FAILED_LOAD.match(message.text)
        if failed:
            path = "/" + message.location.get("url", "").split("/", 3)[-1]
            self.failed_loads.append((path, int(failed.group(1))))
        elif message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text} ({message.location.get('url')})")


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium from Debian's package, launched by Playwright."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is not installed; `make test` installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser, console: Console, base_url: str, phone: bool = False, locale: str = "en-US"):
    """A fresh browser profile (its own cookies) at desktop or phone size, in a language, watched by console."""
    options = PHONE if phone else {"viewport": DESKTOP}
    context = browser.new_context(base_url=base_url, accept_downloads=True, locale=locale, **options)
    context.set_default_timeout(15_000)
    console.watch(context)
    return context


def sign_in(page, email: str, password: str) -> None:
    """Log in through the form and land on the dashboard."""
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def screenshot(page, name: str) -> Path:
    """A full-page screenshot under SCREENSHOT_DIR."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when nothing sticks out sideways)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
