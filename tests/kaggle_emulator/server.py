"""The emulator's HTTP side: Kaggle's RPCs as JSON POSTs, blob uploads, output downloads, the live log stream.

The client reaches it as an HTTP proxy (its URLs are plain http://localhost…), so request paths arrive as
absolute URLs. Faults the tests asked for are applied here, before or after the call is served.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from kagglesdk.blobs.types.blob_api_service import ApiStartBlobUploadRequest
from kagglesdk.datasets.types.dataset_api_service import (
    ApiCreateDatasetRequest,
    ApiCreateDatasetVersionRequest,
    ApiDeleteDatasetRequest,
    ApiGetDatasetMetadataRequest,
    ApiGetDatasetRequest,
    ApiGetDatasetStatusRequest,
)
from kagglesdk.kernels.types.kernels_api_service import (
    ApiCancelKernelSessionRequest,
    ApiGetAcceleratorQuotaStatisticsRequest,
    ApiGetKernelSessionStatusRequest,
    ApiListKernelSessionOutputRequest,
    ApiSaveKernelRequest,
)
from kagglesdk.models.types.model_api_service import ApiGetModelInstanceRequest
from kagglesdk.security.types.oauth_service import IntrospectTokenRequest

from tests.kaggle_emulator.state import ApiError, KaggleState

# method name → (request class, KaggleState method); the URL is /api/v1/<service>/<method>.
RPCS = {
    "IntrospectToken": (IntrospectTokenRequest, KaggleState.introspect_token),
    "StartBlobUpload": (ApiStartBlobUploadRequest, KaggleState.start_blob_upload),
    "CreateDataset": (ApiCreateDatasetRequest, KaggleState.create_dataset),
    "CreateDatasetVersion": (ApiCreateDatasetVersionRequest, KaggleState.create_dataset_version),
    "GetDatasetStatus": (ApiGetDatasetStatusRequest, KaggleState.get_dataset_status),
    "GetDataset": (ApiGetDatasetRequest, KaggleState.get_dataset),
    "GetDatasetMetadata": (ApiGetDatasetMetadataRequest, KaggleState.get_dataset_metadata),
    "DeleteDataset": (ApiDeleteDatasetRequest, KaggleState.delete_dataset),
    "GetModelInstance": (ApiGetModelInstanceRequest, KaggleState.get_model_instance),
    "SaveKernel": (ApiSaveKernelRequest, KaggleState.save_kernel),
    "GetKernelSessionStatus": (ApiGetKernelSessionStatusRequest, KaggleState.get_kernel_session_status),
    "ListKernelSessionOutput": (ApiListKernelSessionOutputRequest, KaggleState.list_kernel_session_output),
    "CancelKernelSession": (ApiCancelKernelSessionRequest, KaggleState.cancel_kernel_session),
    "GetAcceleratorQuotaStatistics": (ApiGetAcceleratorQuotaStatisticsRequest,
                                      KaggleState.get_accelerator_quota_statistics),
}
ANONYMOUS = {"IntrospectToken", "UploadBlob", "DownloadOutput"}  # signed URLs and the token check itself
LOG_END = "END_OF_LOG"


class EmulatorServer(ThreadingHTTPServer):
    """A threaded HTTP server that knows the emulator (its state and the faults to inject)."""

    daemon_threads = True

    def __init__(self, emulator):
        super().__init__(("127.0.0.1", 0), EmulatorHandler)
        self.emulator = emulator


class EmulatorHandler(BaseHTTPRequestHandler):
    """Routes one request; HTTP/1.0, so every response ends with the connection (the log stream needs that)."""

    server: EmulatorServer

    def log_message(self, format: str, *args) -> None:
        """Stay quiet: pytest shows the tests' own output."""

    def do_POST(self) -> None:
        """An RPC of the Kaggle API."""
        self._serve()

    def do_GET(self) -> None:
        """The live log or an output download."""
        self._serve()

    def do_PUT(self) -> None:
        """A blob upload."""
        self._serve()

    def _serve(self) -> None:
        """Count the call, apply its fault if any, check the caller, answer."""
        url = urlsplit(self.path)
        if url.hostname not in (None, "localhost"):
            return self._answer_error(ApiError(502, f"the Kaggle emulator does not proxy {url.hostname}"))
        method = _method_name(self.command, url.path)
        body = self._read_body()
        fault = self.server.emulator.take_fault(method)
        if fault is not None and fault.kind == "status":
            return self._answer_error(ApiError(fault.status, f"injected failure of {method}"))
        if fault is not None and fault.kind == "drop":
            return self._drop()
        connection_file = self.wfile
        if fault is not None and fault.kind == "drop_after":
            self.wfile = io.BytesIO()  # the call is served, its answer lost
        try:
            user = None if method in ANONYMOUS else self._user()
            self._dispatch(method, url, body, user)
        except ApiError as error:
            self._answer_error(error)
        except Exception as error:  # an emulator bug: answer it, so that the test shows it
            traceback.print_exc()
            self._answer_error(ApiError(500, f"emulator bug: {type(error).__name__}: {error}"))
        finally:
            self.wfile = connection_file
        if fault is not None and fault.kind == "drop_after":
            self._drop()

    def _dispatch(self, method: str, url, body: bytes, user: str | None) -> None:
        """Serve one call."""
        if method in RPCS:
            request_class, handler = RPCS[method]
            request = request_class.from_dict(json.loads(body or b"{}"))
            with self.server.emulator.state.changed:
                response = handler(self.server.emulator.state, user, request)
            payload = response if isinstance(response, dict) else response.to_dict()
            return self._answer(200, json.dumps(payload).encode(), "application/json")
        if method == "UploadBlob":
            return self._upload_blob(url.path.rsplit("/", 1)[1], body)
        if method == "DownloadOutput":
            return self._download_output(url.path)
        if method == "LogsStream":
            return self._stream_log(user, url)
        raise ApiError(404, f"the emulator does not implement {self.command} {url.path}")

    def _user(self) -> str:
        """The account of the Basic (user name and key) or Bearer (access token) credentials; 401 otherwise."""
        kind, _, value = self.headers.get("Authorization", "").partition(" ")
        state = self.server.emulator.state
        if kind == "Bearer" and value in state.tokens:
            return state.tokens[value]
        if kind == "Basic":
            username, _, key = base64.b64decode(value).decode().partition(":")
            if state.accounts.get(username) == key:
                return username
        raise ApiError(401, "Unauthenticated")

    def _upload_blob(self, token: str, body: bytes) -> None:
        """Store the bytes of a blob; a resumption probe (an empty PUT) finds it complete or unknown."""
        state = self.server.emulator.state
        with state.changed:
            target = state.blobs.get(token)
        if target is None:
            raise ApiError(404, "unknown upload")
        if self.headers.get("Content-Range", "").startswith("bytes */"):
            return self._answer(200 if target.is_file() else 404, b"", "text/plain")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        self._answer(200, b"", "text/plain")

    def _download_output(self, path: str) -> None:
        """The bytes of one output file of a finished session."""
        _, _, session_id, name = unquote(path).split("/", 4)[1:]
        state = self.server.emulator.state
        with state.changed:
            session = state.sessions.get(int(session_id))
        if session is None or not session.final or name not in session.outputs():
            raise ApiError(404, "no such output")
        self._answer(200, (session.working_dir / name).read_bytes(), "application/octet-stream")

    def _stream_log(self, user: str, url) -> None:
        """A running session's log as server-sent events until it ends; a finished one's as a JSON array."""
        owner, slug = url.path.split("/")[-2:]
        version = parse_qs(url.query).get("versionLabel", [None])[0]
        state = self.server.emulator.state
        with state.changed:
            session = state.session_of(user, owner, slug, version)
            if session.final or session.status == session.status.QUEUED:
                return self._answer(200, json.dumps(session.events).encode(), "application/json")
        self._start_stream("text/event-stream")
        # A reader that had enough hangs up: a poll reads the live log for a few seconds only.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._follow(session)

    def _follow(self, session) -> None:
        """Send the session's log events as they come, then the end marker."""
        state, sent = self.server.emulator.state, 0
        while True:
            with state.changed:
                state.changed.wait_for(lambda sent=sent: len(session.events) > sent or session.final, timeout=0.5)
                events, final = session.events[sent:], session.final
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
            sent += len(events)
            if final or self.server.emulator.stopping:
                self.wfile.write(f"data: {LOG_END}\n\n".encode())
                return

    def _read_body(self) -> bytes:
        """The request's body (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        """A complete response."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer_error(self, error: ApiError) -> None:
        """An error as Kaggle's API sends it."""
        body = json.dumps({"code": error.status, "message": error.message}).encode()
        self._answer(error.status, body, "application/json")

    def _start_stream(self, content_type: str) -> None:
        """Headers of a response whose body lasts until the connection closes."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.end_headers()

    def _drop(self) -> None:
        """Close the connection without (another) word, as a crashed server or a broken network would."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


def _method_name(command: str, path: str) -> str:
    """The name faults and counters use: the RPC's method, or UploadBlob, DownloadOutput, LogsStream."""
    if path.startswith("/emulator/blobs/"):
        return "UploadBlob"
    if path.startswith("/emulator/outputs/"):
        return "DownloadOutput"
    if path.startswith("/api/v1/kernels/logs/stream/"):
        return "LogsStream"
    return path.rsplit("/", 1)[-1] if command == "POST" else f"{command} {path}"

