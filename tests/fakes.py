"""A loopback OpenAI-compatible server for tests: one base, behaviours in subclasses.

``LoopbackOpenAI`` owns the plumbing (a free port on 127.0.0.1, a serving
thread, request recording, JSON and server-sent-event replies); a subclass
decides how to answer by overriding :meth:`LoopbackOpenAI.handle`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUESTION = "Could you walk me through how you would handle that part?"


class LoopbackOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b"{}"
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                with fake._lock:
                    fake.requests.append(
                        {"path": self.path, "body": body, "raw": raw.decode("utf-8", "replace"), "headers": {k.lower(): v for k, v in self.headers.items()}}
                    )
                try:
                    fake.handle(self, body, raw)
                except OSError:  # the client went away (timeouts, drops, kills)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def handle(self, h: BaseHTTPRequestHandler, body: dict, raw: bytes) -> None:
        """Answer one request; the default streams or returns ``QUESTION``."""
        self.answer(h, body, QUESTION)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- reply helpers ------------------------------------------------------------
    @staticmethod
    def send_json(h, code: int, payload) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("retry-after-ms", "5")  # the SDK honours it: quick retries in tests
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def chunk(h, data: bytes) -> None:
        h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        h.wfile.flush()

    @staticmethod
    def event(piece: str) -> bytes:
        obj = {
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        return f"data: {json.dumps(obj)}\n\n".encode()

    @staticmethod
    def sse_headers(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    def stream_words(self, h, text: str, finish: bool = True) -> None:
        """Stream ``text`` a word at a time; ``finish=False`` leaves the stream open."""
        self.sse_headers(h)
        for i, word in enumerate(w for w in text.split(" ") if w):
            self.chunk(h, self.event(word if i == 0 else " " + word))
        if finish:
            self.chunk(h, b"data: [DONE]\n\n")
            self.chunk(h, b"")

    def answer(self, h, body: dict, text: str) -> None:
        """A well-formed reply: streamed when asked, else one completion."""
        if body.get("stream"):
            self.stream_words(h, text)
            return
        self.send_json(h, 200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })


# --- loopback helpers for tests that start a real server ----------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float) -> bool:
    """True once something listens on 127.0.0.1:``port``; False after ``seconds``."""
    import socket
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


# Design messages (not clarifying questions), so the interviewer has something to probe.
DESIGN = [
    "I would rank posts with a model trained on clicks and likes from the feed logs.",
    "The objective is to predict the probability of engagement for each post and user pair, a pointwise classification.",
    "For data I would use impressions, clicks, likes and comments as labels, with features like author affinity.",
    "I would start with logistic regression and then move to a two tower neural network.",
    "I would evaluate offline with ranking metrics and online with an experiment on time spent.",
    "Serving would rank a few thousand candidates per request with a light model first.",
]
