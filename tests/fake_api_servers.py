"""Local stand-ins for the OpenAI and Gemini HTTP APIs, so that tests drive the real client libraries offline.

Each server listens on 127.0.0.1 (a free port), answers on a bounded number of threads, records every request
(path, headers, JSON body, arrival time) and replies from a script: `server.script` is consumed in order, then
`server.default` answers, or `server.responder(body)` when set. Only the parts of the protocols the clients read are
spoken: OpenAI `POST /v1/chat/completions`, Gemini `POST /v1beta/models/{model}:generateContent`.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


@dataclass
class Scripted:
    """One reply: an answer (text, per-token top logprobs, usage) or an HTTP error, after an optional delay."""

    status: int = 200
    text: str = "Yes"
    # Per generated token, its alternatives best first: [[("Yes", -0.2), ("No", -1.8)], ...]; None: no logprobs.
    top_logprobs: list[list[tuple[str, float]]] | None = None
    prompt_tokens: int = 1200
    completion_tokens: int = 1
    thoughts_tokens: int = 0  # Gemini only
    delay_s: float = 0.0  # the server sits on the request this long before answering (timeouts)
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "error"
    error_details: list[dict] | None = None  # Gemini error details, e.g. a google.rpc.RetryInfo


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict
    received_s: float  # time.monotonic() at arrival


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler, max_threads: int):
        super().__init__(("127.0.0.1", 0), handler)
        self._slots = threading.BoundedSemaphore(max_threads)

    def process_request(self, request, client_address):
        # At most `max_threads` requests in flight; a request beyond that waits here for a free slot.
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class FakeApiServer:
    """The HTTP plumbing and recording; subclasses route paths and render replies in their API's JSON."""

    def __init__(self, max_threads: int = 8):
        self.script: list[Scripted] = []
        self.default = Scripted()
        self.responder: Callable[[dict], Scripted] | None = None
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's naming)
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, reply_headers, payload = owner._answer(self.path, headers, body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in {"content-type": "application/json", **reply_headers}.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = _BoundedServer(Handler, max_threads)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stopping.set()  # wakes handlers sleeping on a delay
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, path: str, headers: dict, body: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append(Recorded(path, headers, body, time.monotonic()))
            route_error = self.route_error(path, body)  # a rejected request does not use up the script
            if route_error:
                return route_error
            if self.script:
                scripted = self.script.pop(0)
            elif self.responder is not None:
                scripted = self.responder(body)
            else:
                scripted = self.default
        if scripted.delay_s:
            self._stopping.wait(scripted.delay_s)
        if scripted.status != 200:
            return scripted.status, scripted.headers, self.error_json(scripted)
        return 200, scripted.headers, self.reply_json(scripted, body)

    # Subclasses: the API's routes and JSON.
    def route_error(self, path: str, body: dict) -> tuple[int, dict, dict] | None:
        raise NotImplementedError

    def error_json(self, scripted: Scripted) -> dict:
        raise NotImplementedError

    def reply_json(self, scripted: Scripted, body: dict) -> dict:
        raise NotImplementedError


class FakeOpenAIServer(FakeApiServer):
    """`POST /v1/chat/completions`; logprobs are returned only when the request asks for them."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def route_error(self, path, body):
        if path != "/v1/chat/completions":
            return 404, {}, {"error": {"message": f"unknown path {path}", "type": "invalid_request_error"}}
        return None

    def error_json(self, scripted):
        return {"error": {"message": scripted.error_message, "type": "api_error", "code": None, "param": None}}

    def reply_json(self, scripted, body):
        logprobs = None
        if body.get("logprobs") and scripted.top_logprobs is not None:
            logprobs = {
                "content": [
                    {
                        "token": alts[0][0],
                        "logprob": alts[0][1],
                        "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in alts],
                    }
                    for alts in scripted.top_logprobs
                ]
            }
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": scripted.text},
                    "logprobs": logprobs,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": scripted.prompt_tokens,
                "completion_tokens": scripted.completion_tokens,
                "total_tokens": scripted.prompt_tokens + scripted.completion_tokens,
            },
        }

    @staticmethod
    def images(body: dict) -> list[Image.Image]:
        """The images of a recorded request's user message, decoded from their data URLs."""
        user = [m for m in body["messages"] if m["role"] == "user"][-1]
        urls = [part["image_url"]["url"] for part in user["content"] if part["type"] == "image_url"]
        return [Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) for url in urls]

    @staticmethod
    def texts(body: dict) -> tuple[str, str]:
        """(system message, user text) of a recorded request."""
        system = "".join(m["content"] for m in body["messages"] if m["role"] == "system")
        user = [m for m in body["messages"] if m["role"] == "user"][-1]
        return system, "".join(part["text"] for part in user["content"] if part["type"] == "text")


class FakeGeminiServer(FakeApiServer):
    """`POST /v1beta/models/{model}:generateContent`; `reject_logprobs` plays a model that refuses them."""

    def __init__(self, max_threads: int = 8):
        super().__init__(max_threads)
        self.reject_logprobs = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route_error(self, path, body):
        if not re.fullmatch(r"/v1beta/models/[\w.-]+:generateContent", path):
            return 404, {}, {"error": {"code": 404, "message": f"unknown path {path}", "status": "NOT_FOUND"}}
        if self.reject_logprobs and body.get("generationConfig", {}).get("responseLogprobs"):
            return (
                400,
                {},
                {
                    "error": {
                        "code": 400,
                        "status": "INVALID_ARGUMENT",
                        "message": "Logprobs is not enabled for models/this-model",
                    }
                },
            )
        return None

    def error_json(self, scripted):
        names = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
        status = names.get(scripted.status, "INVALID_ARGUMENT")
        error = {"code": scripted.status, "message": scripted.error_message, "status": status}
        if scripted.error_details:
            error["details"] = scripted.error_details
        return {"error": error}

    def reply_json(self, scripted, body):
        candidate = {
            "content": {"role": "model", "parts": [{"text": scripted.text}]},
            "finishReason": "STOP",
            "index": 0,
        }
        if body.get("generationConfig", {}).get("responseLogprobs") and scripted.top_logprobs is not None:
            candidate["logprobsResult"] = {
                "topCandidates": [
                    {"candidates": [{"token": t, "logProbability": lp} for t, lp in alts]}
                    for alts in scripted.top_logprobs
                ],
                "chosenCandidates": [
                    {"token": alts[0][0], "logProbability": alts[0][1]} for alts in scripted.top_logprobs
                ],
            }
        usage = {
            "promptTokenCount": scripted.prompt_tokens,
            "candidatesTokenCount": scripted.completion_tokens,
            "totalTokenCount": scripted.prompt_tokens + scripted.completion_tokens + scripted.thoughts_tokens,
        }
        if scripted.thoughts_tokens:
            usage["thoughtsTokenCount"] = scripted.thoughts_tokens
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "fake"}

    @staticmethod
    def images(body: dict) -> list[Image.Image]:
        """The inline images of a recorded request (the client sends URL-safe base64)."""
        parts = body["contents"][-1]["parts"]
        blobs = [part["inlineData"]["data"] for part in parts if "inlineData" in part]
        return [Image.open(io.BytesIO(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))) for blob in blobs]

    @staticmethod
    def texts(body: dict) -> tuple[str, str]:
        """(system instruction, user text) of a recorded request."""
        system = "".join(part.get("text", "") for part in body.get("systemInstruction", {}).get("parts", []))
        return system, "".join(part.get("text", "") for part in body["contents"][-1]["parts"])
