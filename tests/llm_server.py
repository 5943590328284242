"""A small OpenAI-compatible chat-completions server for tests and the LLM benchmark.

No machine here reaches a real LLM, so the `llm` extraction backend is exercised against this
server through the real `openai` client. Its "model" is deterministic: it reads the report lines
`[<id>] <section>: <text>` of the last user message and answers what the project's rules
extractor finds in them, in the extraction answer schema; asked as the judge (a message with
`Question:` and `Answer:` lines), it checks yes/no answers against that reading (judge_answer).
Faults (server errors, rate limits, timeouts, broken or ungrounded answers) are injected per
report on demand.

    with FakeLLMServer(latency=0.0) as server:
        server.inject("pleural effusion", "429", "500")   # the next two matching requests fail
        client = OpenAI(base_url=server.base_url, api_key="test-key")
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cxrvqa.core.scene_graph import FINDING_SECTIONS, Sentence
from cxrvqa.core.vocab import vocabulary
from cxrvqa.extraction.rules import extract_scene_graph, rules

FAULTS = ("500", "429", "slow", "malformed", "invalid", "length", "refusal", "ungrounded", "obey_injection")
REPORT_LINE = re.compile(r"^\[(\d+)\] ([a-z]+): (.*)$", re.MULTILINE)
QA_LINE = re.compile(r"^(Question|Answer): (.*)$", re.MULTILINE)
PRESENCE_QUESTION = re.compile(r"^(is there|are there|does this|do you see|is .* present|can .* be seen)", re.I)
NOT_PRESENCE = re.compile(r"\b(in the|uncertain|suspected|excluded|ruled out|normal|either|both)\b", re.I)
REFUSAL = "I can't help with that."


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    """OpenAI's error body, which the client turns into the message of its exception."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def rules_answer(lines: list[tuple[int, str, str]]) -> dict[str, Any]:
    """The answer a perfect model would give: the rules extractor's observations of the finding
    sentences, with evidence quoted from the sentence it cites."""
    sentences = [
        Sentence(id=i, section=section, text=text, start=0, end=len(text))
        for i, section, text in lines
        if section in FINDING_SECTIONS
    ]
    texts = {s.id: s.text for s in sentences}
    region_names = vocabulary().regions
    observations = []
    for o in extract_scene_graph("fake", sentences).observations:
        evidence = o.evidence[0]
        quote = texts[evidence.sentence_id][evidence.start : evidence.end]
        observations.append(
            {
                "finding": o.name if o.derived_from else quote,
                "presence": o.presence,
                "certainty": o.certainty,
                "laterality": o.laterality,
                "regions": [region_names[r]["name"] for r in o.regions],
                "severity": o.severity,
                "change": o.change,
                "sentence_id": evidence.sentence_id,
                "evidence": quote,
            }
        )
    return {"observations": observations}


def judge_answer(lines: list[tuple[int, str, str]], question: str, answer: str) -> dict[str, Any]:
    """The verdict of a strict but simple judge: a yes/no answer to a plain presence question ("Is there
    X?", "Do you see X ...?", not about a region, a hedge or an exclusion) is contradicted when the rules
    extractor reads the report's X the other way; an answer holding a placeholder is unclear; everything
    else passes."""
    entailment, rationale = "entailed", "The report supports the answer."
    said = answer.strip().lower()
    if PRESENCE_QUESTION.match(question) and not NOT_PRESENCE.search(question) and said[:3] in ("yes", "no", "no."):
        sentences = [
            Sentence(id=i, section=section, text=text, start=0, end=len(text))
            for i, section, text in lines
            if section in FINDING_SECTIONS
        ]
        presence: dict[str, str] = {}
        for o in extract_scene_graph("fake", sentences).observations:
            if o.finding and presence.get(o.finding) != "present":
                presence[o.finding] = o.presence
        asked = [
            o.finding
            for o in extract_scene_graph(
                "question", [Sentence(id=0, section="findings", text=question, start=0, end=len(question))]
            ).observations
            if o.finding
        ]
        found = presence.get(asked[0]) if asked else None
        if found in ("present", "absent") and (found == "present") != said.startswith("yes"):
            entailment, rationale = "contradicted", f"The report says {asked[0]} is {found}."
    unclear = "XXXX" in answer or "{" in answer
    return {
        "entailment": entailment,
        "relevance": "relevant",
        "completeness": "complete",
        "question_clarity": "clear",
        "answer_clarity": "unclear" if unclear else "clear",
        "rationale": rationale,
    }


def _ungrounded(sentence_id: int, finding: str, laterality: str | None, evidence: str) -> dict[str, Any]:
    """Schema-valid, but its quote is not in the report: the backend's grounding check must reject it."""
    return {
        "observations": [
            {
                "finding": finding,
                "presence": "present",
                "certainty": None,
                "laterality": laterality,
                "regions": [],
                "severity": None,
                "change": None,
                "sentence_id": sentence_id,
                "evidence": evidence,
            }
        ]
    }


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a "slow" request still sleeping never holds up shutdown
    request_queue_size = 128  # the default backlog of 5 drops a burst of 16-32 new connections

    def __init__(self, fake: FakeLLMServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers: the client reuses its connections
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them
    server: _HTTPServer

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout); there is nobody left to answer

    def do_GET(self) -> None:
        self._answer(None)

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, body: bytes | None) -> None:
        status, headers, payload = self.server.fake.respond(self.command, self.path, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is `FakeLLMServer.requests`, not stderr


class FakeLLMServer:
    """An OpenAI-compatible server on 127.0.0.1 (random port) in a daemon thread.

    latency: seconds from a request's arrival to its answer; slow_seconds: those of a "slow" fault (longer
    than the client's timeout); model: the one model `GET /v1/models` lists.
    """

    def __init__(self, latency: float = 0.0, slow_seconds: float = 3.0, model: str = "fake-model") -> None:
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._queued: dict[str, deque[str]] = {}
        self._always: dict[str, str] = {}
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeLLMServer:
        rules()  # load the extractor once, not in the first requests' threads
        self._http = _HTTPServer(self)
        self._thread = threading.Thread(target=self._http.serve_forever, name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        assert self._http is not None and self._thread is not None
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    @property
    def port(self) -> int:
        assert self._http is not None, "the server is not started (use it as a context manager)"
        return self._http.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def inject(self, trigger: str, *faults: str) -> None:
        """Queue faults for the requests whose report contains `trigger`, one per request, in order."""
        self._check(faults)
        with self._lock:
            self._queued.setdefault(trigger, deque()).extend(faults)

    def always(self, trigger: str, fault: str) -> None:
        """Apply `fault` to every request whose report contains `trigger` (after any queued ones)."""
        self._check((fault,))
        with self._lock:
            self._always[trigger] = fault

    @staticmethod
    def _check(faults: tuple[str, ...]) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; expected some of {list(FAULTS)}")

    def _take_fault(self, report: str) -> str | None:
        with self._lock:
            for trigger, queue in self._queued.items():
                if queue and trigger in report:
                    return queue.popleft()
            return next((fault for trigger, fault in self._always.items() if trigger in report), None)

    def _log(self, path: str, headers: Any, request: dict[str, Any], report_key: str, fault: str | None) -> None:
        entry = {
            "path": path,
            "received_at": time.time(),
            "model": request.get("model"),
            "response_format_type": (request.get("response_format") or {}).get("type"),
            "authorization": headers.get("Authorization"),
            "report_key": report_key,
            "fault": fault,
        }
        with self._lock:
            self.requests.append(entry)

    def respond(
        self, method: str, path: str, headers: Any, body: bytes | None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, extra headers, JSON body) of one request, sent its latency after it arrived: the
        answer is computed within that time, so that the fake's own CPU does not add to the latency
        the LLM bench compares with."""
        arrived = time.monotonic()
        status, extra, payload, delay = self._reply(method, path, headers, body)
        time.sleep(max(0.0, arrived + delay - time.monotonic()))
        return status, extra, payload

    def _reply(
        self, method: str, path: str, headers: Any, body: bytes | None
    ) -> tuple[int, dict[str, str], dict[str, Any], float]:
        """(status, extra headers, JSON body, seconds the answer takes)."""
        if method == "GET" and path == "/v1/models":
            self._log(path, headers, {}, "", None)
            return (
                200,
                {},
                {
                    "object": "list",
                    "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "cxrvqa-tests"}],
                },
                0.0,
            )
        if method != "POST" or path != "/v1/chat/completions":
            self._log(path, headers, {}, "", None)
            return 404, {}, _error(f"Unknown request URL: {method} {path}", "invalid_request_error", "unknown_url"), 0.0
        try:
            request = json.loads(body or b"")
            messages = request["messages"]
        except (ValueError, KeyError, TypeError) as exc:
            self._log(path, headers, {}, "", None)
            return 400, {}, _error(f"Invalid request body: {exc}", "invalid_request_error", None), 0.0
        report = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        lines = [(int(i), section, text) for i, section, text in REPORT_LINE.findall(report)]
        fault = self._take_fault(report)
        self._log(path, headers, request, lines[0][2] if lines else "", fault)
        delay = self.slow_seconds if fault == "slow" else self.latency
        if fault == "500":
            return (
                500,
                {},
                _error("The server had an error while processing your request.", "server_error", None),
                delay,
            )
        if fault == "429":
            return (
                429,
                {"Retry-After": "1", "retry-after-ms": "1000"},
                _error(
                    "Rate limit reached for requests. Please try again in 1s.",
                    "rate_limit_exceeded",
                    "rate_limit_exceeded",
                ),
                delay,
            )
        first_id = lines[0][0] if lines else 0
        answers = {
            "malformed": '{"observations": [ {"finding": "eff',
            "invalid": json.dumps({"observations": [{"finding": 42, "presence": "maybe"}]}),
            "refusal": None,
            "ungrounded": json.dumps(_ungrounded(first_id, "pneumothorax", "right", "large right pneumothorax")),
            "obey_injection": json.dumps(_ungrounded(first_id, "no finding", None, "the study is normal")),
        }
        judged = QA_LINE.findall(report)
        if fault in answers:
            content = answers[fault]
        elif judged:  # a judge prompt (prompts/judge/): a verdict instead of observations
            fields = dict(judged)
            content = json.dumps(judge_answer(lines, fields.get("Question", ""), fields.get("Answer", "")))
        else:
            content = json.dumps(rules_answer(lines))
        finish_reason = "stop"
        if fault == "length":
            content, finish_reason = content[: len(content) // 2], "length"
        prompt_tokens = sum(len(_text(m.get("content"))) for m in messages) // 4
        completion_tokens = len(content or REFUSAL) // 4
        return (
            200,
            {},
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": content,
                            "refusal": REFUSAL if fault == "refusal" else None,
                        },
                        "finish_reason": finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            delay,
        )
