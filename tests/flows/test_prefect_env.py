"""The local Prefect server's readiness wait: an answer on /health, or a clear error when the server died."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from cxrvqa.errors import CxrvqaError
from flows import prefect_env


class _Health(BaseHTTPRequestHandler):
    """Answers /api/health with 503 to its first `starting` calls (a server still starting), then 200."""

    calls, starting = 0, 2

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls += 1
        ready = type(self).calls > type(self).starting
        self.send_response(404 if self.path != "/api/health" else 200 if ready else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_waits_until_the_server_answers_its_health_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Health, "calls", 0)
    server = HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    process = _sleeper()
    monkeypatch.setattr(prefect_env, "_local_server", process)
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{server.server_address[1]}/api")
    try:
        prefect_env.wait_for_local_server(timeout=10)
    finally:
        server.shutdown()
        process.kill()
        process.wait()
    assert _Health.calls == 3  # two answers of a starting server, then its health


def test_a_server_that_exited_is_an_error_with_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("address already in use\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    monkeypatch.setattr(prefect_env, "_local_server", process)
    monkeypatch.setattr(prefect_env, "_server_log", log)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with pytest.raises(CxrvqaError, match=r"exited with code 3 \(log .*server.log\): address already in use"):
        prefect_env.wait_for_local_server(timeout=10)


def test_a_server_that_never_answers_is_an_error_naming_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    process = _sleeper()
    monkeypatch.setattr(prefect_env, "_local_server", process)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    try:
        with pytest.raises(CxrvqaError, match=r"did not answer http://127.0.0.1:9/api/health within 1 s"):
            prefect_env.wait_for_local_server(timeout=1)
    finally:
        process.kill()
        process.wait()
