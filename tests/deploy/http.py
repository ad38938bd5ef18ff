"""HTTP helpers of the deployment tests: every header as sent (duplicates included), and an upload held open."""
from __future__ import annotations

import http.client
import ssl
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawReply:
    """A reply with its headers as a list, so a header sent twice shows twice."""

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


def connect(base_url: str, timeout: float = 30, source: str | None = None) -> http.client.HTTPConnection:
    """A connection to base_url (http or https; a self-signed certificate is accepted)."""
    parts = urlsplit(base_url)
    source_address = (source, 0) if source else None
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, source_address=source_address,
                                           context=ssl._create_unverified_context())  # noqa: S323 (a test certificate)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout, source_address=source_address)


def request(base_url: str, path: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None,
            source: str | None = None) -> RawReply:
    """One request on a fresh connection."""
    connection = connect(base_url, source=source)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return RawReply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


class HeldUpload:
    """A dataset upload through the API whose body is sent in two parts: it stays in flight in between."""

    def __init__(self, base_url: str, token: str, data: bytes, filename: str = "held.jsonl"):
        """Prepare the multipart body of data; nothing is sent yet."""
        boundary = uuid.uuid4().hex
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        self.body = head + data + f"\r\n--{boundary}--\r\n".encode()
        self.connection = connect(base_url, timeout=60)
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

    def finish(self) -> RawReply:
        """Send the rest of the body and read the reply."""
        try:
            self.connection.send(self.body[self.sent:])
            response = self.connection.getresponse()
            return RawReply(response.status, response.getheaders(), response.read())
        finally:
            self.connection.close()
