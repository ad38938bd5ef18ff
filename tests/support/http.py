"""The one HTTP client of the tests, for servers they start: each reply with every header as sent."""
from __future__ import annotations

import contextlib
import http.client
import ssl
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Reply:
    """What the server answered; the headers as a list, so a header sent twice shows twice."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        """Every value of header name (case-insensitive)."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def one(self, name: str) -> str:
        """The single value of header name; fails when it is absent or repeated."""
        found = self.values(name)
        assert len(found) == 1, f"{name}: {found}"
        return found[0]


def connect(url: str, timeout: float = 30, source: str | None = None) -> http.client.HTTPConnection:
    """A fresh connection to url's server (http or https; a self-signed certificate is accepted)."""
    parts = urlsplit(url)
    source_address = (source, 0) if source else None
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, source_address=source_address,
                                           context=ssl._create_unverified_context())  # noqa: S323 (a test certificate)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout, source_address=source_address)


def fetch(url: str, path: str = "", method: str = "GET", headers: dict | None = None,
          body: bytes | Iterable[bytes] | None = None, source: str | None = None, timeout: float = 30) -> Reply:
    """One request to url + path on a fresh connection (so gunicorn may hand it to any worker), from source if
    given. No redirect is followed and no proxy is used; a body of several pieces goes chunked."""
    parts = urlsplit(url + path)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = connect(url, timeout, source)
    try:
        # The server may answer (a 413) before reading the whole body; its answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(method, target, body=body, headers=headers or {})
        return _reply(connection.getresponse())
    finally:
        connection.close()


def status_of(url: str, path: str = "", timeout: float = 5) -> int | None:
    """The status of a GET of url + path, or None while nothing answers there."""
    try:
        return fetch(url, path, timeout=timeout).status
    except (OSError, http.client.HTTPException):
        return None


def fetch_many(url: str, requests: list[dict], parallel: int = 8) -> list[Reply]:
    """Send the requests (keyword arguments of fetch) concurrently; their replies in the same order."""
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda kwargs: fetch(url, **kwargs), requests))


def statuses(replies: list[Reply]) -> dict[int, int]:
    """How many replies had each status."""
    counts: dict[int, int] = {}
    for reply in replies:
        counts[reply.status] = counts.get(reply.status, 0) + 1
    return counts


def _reply(response: http.client.HTTPResponse) -> Reply:
    """The whole of a response."""
    return Reply(response.status, response.getheaders(), response.read())


class HeldUpload:
    """A dataset upload through the API whose body is sent in two parts: it stays in flight in between."""

    def __init__(self, url: str, token: str, data: bytes, filename: str = "held.jsonl"):
        """Prepare the multipart body of data; nothing is sent yet."""
        boundary = uuid.uuid4().hex
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        self.body = head + data + f"\r\n--{boundary}--\r\n".encode()
        self.connection = connect(url, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Length": str(len(self.body)),
                        "Content-Type": f"multipart/form-data; boundary={boundary}"}
        self.sent = 0

    def start(self, first_bytes: int) -> None:
        """Send the request head and the first bytes of the body."""
        self.connection.putrequest("POST", "/api/v1/datasets")
        for name, value in self.headers.items():
            self.connection.putheader(name, value)
        self.connection.endheaders(self.body[:first_bytes])
        self.sent = first_bytes

    def finish(self) -> Reply:
        """Send the rest of the body and read the reply."""
        try:
            self.connection.send(self.body[self.sent:])
            return _reply(self.connection.getresponse())
        finally:
            self.connection.close()
