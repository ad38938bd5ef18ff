"""The official kaggle client made fit for a worker: explicit credentials, timeouts, every call counted, and its
errors as BackendErrors.

Importing `kaggle` authenticates at import time and creates its config folder, so this module imports it only when
the first client is built (kaggle_api_class), after the backend has pointed KAGGLE_CONFIG_DIR at the data folder.
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from app.jobs.backends import BackendError

log = logging.getLogger(__name__)

T = TypeVar("T")
# What the client raises for a failed call: HTTP and connection errors, and ValueError for refusals it checks
# itself or re-raises from a 401/403 (see backend_error).
CLIENT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, ValueError)
# The client's config names that hold credentials (read from KAGGLE_* variables unless removed).
CREDENTIAL_NAMES = ("username", "key", "token", "api_token")
CREDENTIALS_MESSAGE = ("Kaggle refused the credentials: check KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN) "
                       "against kaggle.com → Settings → API.")


class TimeoutAdapter(HTTPAdapter):
    """Gives every request a timeout: kagglesdk sends without one, so a silent server would hang the worker."""

    def __init__(self, timeout: tuple[float, float]):
        super().__init__()
        self.timeout = timeout

    def send(self, request, **kwargs):
        """Send with the default timeout unless the caller chose one."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


@functools.cache
def kaggle_api_class() -> type:
    """KaggleApi with the Studio's credentials and config folder, and a (connect, read) timeout on every call."""
    with contextlib.redirect_stdout(io.StringIO()):  # without credentials the import-time login prints its help
        from kaggle.api.kaggle_api_extended import KaggleApi

    class StudioKaggleApi(KaggleApi):
        """KaggleApi with the Studio's credentials and config folder, and a (connect, read) timeout on every call."""

        def __init__(self, credentials: dict[str, str], config_dir: Path, timeout: tuple[float, float]):
            self.credentials = credentials
            self.timeout = timeout
            # KaggleApi reads these once, when kaggle is imported; a worker configures each client when it makes it.
            self.config_dir = str(config_dir)
            self.config = os.path.join(self.config_dir, self.config_file)
            self.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []

        def read_config_environment(self, config_data: dict | None = None) -> dict:
            """The client's KAGGLE_* variables less credentials, plus the Studio's (a worker serves many accounts)."""
            values = super().read_config_environment(config_data)
            kept = {name: value for name, value in values.items() if name not in CREDENTIAL_NAMES}
            return {**kept, **{k: v for k, v in self.credentials.items() if k != "token"}}

        def _authenticate_with_access_token(self) -> bool:
            """Authenticate with the given access token (never KAGGLE_API_TOKEN or a token file): Kaggle says whose."""
            token = self.credentials.get("token")
            if username := (self._introspect_token(token) if token else None):
                self.config_values.update({self.CONFIG_NAME_TOKEN: token, self.CONFIG_NAME_USER: username,
                                           self.CONFIG_NAME_AUTH_METHOD: "ACCESS_TOKEN"})
            return bool(username)

        def build_kaggle_client(self):
            """The kagglesdk client of one call, its HTTP session given the timeout adapter."""
            client = super().build_kaggle_client()
            http = client.http_client()
            http._init_session()  # kagglesdk creates its requests session lazily and offers no hook for adapters
            for scheme in ("http://", "https://"):
                http._session.mount(scheme, TimeoutAdapter(self.timeout))
            return client

    return StudioKaggleApi


class CountedApi:
    """A client whose every method call is counted (studio_kaggle_api_calls_total) by operation and outcome."""

    def __init__(self, api, count_call):
        """Count api's calls with count_call(operation), a context manager around each."""
        self.api, self.count_call = api, count_call

    def __getattr__(self, name: str):
        """The client's attribute; a method comes back wrapped in the count."""
        attribute = getattr(self.api, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def counted(*args, **kwargs):
            with self.count_call(name):
                return attribute(*args, **kwargs)

        return counted


def authenticated_api(credentials: dict[str, str], config_dir: Path, timeout: tuple[float, float]):
    """A client that has authenticated, or a permanent BackendError saying which credentials are wrong."""
    api = kaggle_api_class()(credentials, config_dir, timeout)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            api.authenticate()
    except SystemExit:  # how KaggleApi.authenticate() reports that it found no usable credentials
        log.info("kaggle authentication failed: %s", printed.getvalue().strip())
        raise BackendError("Kaggle credentials are missing or were not accepted: set KAGGLE_USERNAME and "
                           "KAGGLE_KEY, or a valid KAGGLE_API_TOKEN.") from None
    except CLIENT_ERRORS as error:  # an access token is checked with Kaggle, which may be unreachable
        raise backend_error(error) from error
    return api


def with_retries(operation: Callable[[], T], attempts: int, backoff_seconds: float) -> T:
    """operation(), retried with exponential backoff while it fails transiently; a BackendError once it cannot."""
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except BackendError as failure:
            if not failure.transient or attempt == attempts:
                raise
            error = failure
        except CLIENT_ERRORS as client_error:
            error = backend_error(client_error)
            if not error.transient or attempt == attempts:
                raise error from client_error
        delay = backoff_seconds * 2 ** (attempt - 1) * random.uniform(1, 1.5)  # noqa: S311 (jitter, not a secret)
        log.warning("Kaggle call failed (attempt %d of %d), retrying in %.1fs: %s", attempt, attempts, delay,
                    error.message)
        time.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def backend_error(error: Exception) -> BackendError:
    """The BackendError a client failure means: transient for 5xx, 429 and connection trouble, else permanent."""
    status = http_status(error)
    detail = str(error) or type(error).__name__
    if status == 401:
        return BackendError(CREDENTIALS_MESSAGE)
    if status == 403:
        return BackendError(f"Kaggle denied access ({detail}): the dataset or kernel was deleted or belongs to "
                            "another account than KAGGLE_USERNAME.")
    if status is not None and (status >= 500 or status == 429):
        return BackendError(f"Kaggle is failing (HTTP {status}): {detail}", transient=True)
    if status is not None:
        return BackendError(f"Kaggle refused the request (HTTP {status}): {detail}")
    if isinstance(error, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                          urllib3.exceptions.HTTPError)):
        return BackendError(f"Kaggle did not answer: {detail}", transient=True)
    if detail.startswith("Upload unsuccessful"):  # the client's word for a file upload it gave up on
        return BackendError(f"Uploading to Kaggle failed: {detail}", transient=True)
    return BackendError(f"Kaggle refused the request: {detail}")


def http_status(error: BaseException) -> int | None:
    """The HTTP status behind error, also when the client re-raised it as a ValueError (status, output, log)."""
    for candidate in (error, error.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(candidate, requests.HTTPError) and response is not None:
            return response.status_code
    return None
