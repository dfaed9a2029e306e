"""A small OpenAI-compatible provider on 127.0.0.1 for the gateway tests and benchmark.

Behaviour per model name (`UpstreamStub.script[model]`): answer text, usage, tool calls, an error
status, a delay before answering, stream chunks and the pause between them. Every request it gets is
kept (`requests`), and each stream notes how many chunks it wrote before the reader went away.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    text: str = "Hello from the stub."
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0
    status: int = 200
    delay: float = 0.0
    chunks: list[str] = field(default_factory=lambda: ["Hel", "lo ", "there", "!"])
    chunk_delay: float = 0.0
    tool_calls: list[dict] = field(default_factory=list)
    send_usage: bool = True


@dataclass
class StreamLog:
    model: str
    written: int = 0
    broken: bool = False
    finished: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: more clients connecting at once are reset.
    request_queue_size = 128


class UpstreamStub:
    def __init__(self, api_key: str = "stub-secret"):
        self.api_key = api_key
        self.script: dict[str, Behaviour] = {}
        self.requests: list[dict] = []
        self.streams: list[StreamLog] = []
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "UpstreamStub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def behaviour(self, model: str) -> Behaviour:
        return self.script.setdefault(model, Behaviour())

    def models_called(self) -> list[str]:
        return [r["body"]["model"] for r in self.requests]

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in one write: two small writes on a kept-alive connection meet the
            # reader's delayed ACK (Nagle) and cost ~40 ms each.
            wbufsize = -1

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"body": body, "authorization": self.headers.get("Authorization")})
                if self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    return self._json(401, {"error": {"message": "bad key", "type": "auth", "code": None}})
                behaviour = stub.behaviour(body["model"])
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                if behaviour.status != 200:
                    error = {
                        "message": f"stub error {behaviour.status}",
                        "type": "server_error",
                        "code": None,
                    }
                    return self._json(behaviour.status, {"error": error})
                if body.get("stream"):
                    return self._stream(body, behaviour)
                message = {"role": "assistant", "content": behaviour.text}
                if behaviour.tool_calls:
                    message = {"role": "assistant", "content": None, "tool_calls": behaviour.tool_calls}
                answer = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                }
                if behaviour.send_usage:
                    answer["usage"] = _usage(behaviour)
                return self._json(200, answer)

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict, behaviour: Behaviour) -> None:
                log = StreamLog(model=body["model"])
                stub.streams.append(log)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

                def event(chunk: dict | str) -> None:
                    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()

                base = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": body["model"],
                }
                try:
                    for text in behaviour.chunks:
                        event(
                            {
                                **base,
                                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
                            }
                        )
                        log.written += 1
                        if behaviour.chunk_delay:
                            time.sleep(behaviour.chunk_delay)
                    event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    wants_usage = (body.get("stream_options") or {}).get("include_usage")
                    if wants_usage and behaviour.send_usage:
                        event({**base, "choices": [], "usage": _usage(behaviour)})
                    event("[DONE]")
                    log.finished = True
                except (BrokenPipeError, ConnectionResetError):
                    log.broken = True

        return Handler


def _usage(behaviour: Behaviour) -> dict:
    return {
        "prompt_tokens": behaviour.prompt_tokens,
        "completion_tokens": behaviour.completion_tokens,
        "total_tokens": behaviour.prompt_tokens + behaviour.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": behaviour.cached_tokens},
    }
