"""The local Prefect server kept between builds (`flows.prefect_env`, `flows.kept_server`): taken by the next build,
stopped once idle, never while a build holds it. The builds are small scripts in processes of their own (a lease
lasts as long as its process); the server is a stand-in that answers /api/health (the real one: tests/flows/
test_build.py's CLI build)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxrvqa.errors import CxrvqaError
from flows import prefect_env

#: A stand-in for Prefect's server on the port it is given.
FAKE_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""

#: A build's use of the server: it takes one (or starts it), waits for its health, says which, then runs argv[1] s.
BUILD = f"""
import json, os, sys, time
from flows import prefect_env
prefect_env._server_command = lambda port: [sys.executable, "-c", {FAKE_SERVER!r}, str(port)]
if sys.argv[2:] == ["no-locks"]:  # a filesystem that takes no file locks
    def flock(*args):
        raise OSError(38, "Function not implemented")
    prefect_env.fcntl.flock = flock
while os.environ.get("GO") and not os.path.exists(os.environ["GO"]):  # builds started together: all at once
    time.sleep(0.01)
prefect_env.start_local_server()
prefect_env.wait_for_local_server(timeout=30)
own = prefect_env._local_server.pid if prefect_env._local_server else None
print(json.dumps({{"url": os.environ["PREFECT_API_URL"], "keeper": prefect_env._keeper, "own": own}}), flush=True)
time.sleep(float(sys.argv[1]))
"""


def _environment(home: Path | str, idle: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**environment, "PREFECT_HOME": str(home), prefect_env.IDLE_VARIABLE: idle}


def _build(home: Path, idle: str, runs_s: float = 0.0, *options: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(runs_s), *options],
        capture_output=True,
        text=True,
        env=_environment(home, idle),
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _records(home: Path) -> list[Path]:
    return sorted(home.glob("cxrvqa-server-*.json"))


def _gone_within(keeper: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not prefect_env.keeper_runs(keeper):
            return True
        time.sleep(0.2)
    return False


def test_the_next_build_takes_the_kept_server_and_it_stops_once_idle(tmp_path: Path) -> None:
    first = _build(tmp_path, "5")
    assert first["keeper"] is not None and first["own"] is None
    assert prefect_env.keeper_runs(first["keeper"]) and _answers(first["url"])  # kept after the build
    (record,) = _records(tmp_path)
    assert json.loads(record.read_text())["keeper"] == first["keeper"]
    second = _build(tmp_path, "5")
    assert (second["url"], second["keeper"]) == (first["url"], first["keeper"])
    assert _gone_within(first["keeper"], 20)
    assert not _records(tmp_path) and not _answers(first["url"])  # the record went, and the server with its keeper


@pytest.mark.parametrize("relative", [False, True])
def test_a_build_that_holds_the_server_keeps_it_past_the_idle_time(tmp_path: Path, relative: bool) -> None:
    """Also with Prefect's home given relative to the build's folder (the keeper runs from another one)."""
    home = "prefect-home" if relative else tmp_path
    running = subprocess.Popen(
        [sys.executable, "-c", BUILD, "10"],
        stdout=subprocess.PIPE,
        text=True,
        env=_environment(home, "1"),
        cwd=tmp_path,
    )
    try:
        assert running.stdout is not None
        taken = json.loads(running.stdout.readline())
        time.sleep(4)  # the lease's time is 4 s old, past the idle second: the held lease alone keeps the server
        assert prefect_env.keeper_runs(taken["keeper"]) and _answers(taken["url"])
        assert running.wait(30) == 0
    finally:
        running.kill()
        running.wait()
    assert _gone_within(taken["keeper"], 20) and not _records(tmp_path / home)


def test_builds_started_together_share_one_server(tmp_path: Path) -> None:
    go = tmp_path / "go"
    environment = {**_environment(tmp_path, "5"), "GO": str(go)}
    builds = [
        subprocess.Popen([sys.executable, "-c", BUILD, "2"], stdout=subprocess.PIPE, text=True, env=environment)
        for _ in range(3)
    ]
    time.sleep(2)  # their interpreters started
    go.touch()
    try:
        taken = [json.loads(b.communicate(timeout=60)[0]) for b in builds]
    finally:
        for build in builds:
            build.kill()
            build.wait()
    assert len({(t["url"], t["keeper"]) for t in taken}) == 1, (taken, [r.read_text() for r in _records(tmp_path)])
    assert len(_records(tmp_path)) == 1
    assert _gone_within(taken[0]["keeper"], 30)


def test_a_keeper_told_to_stop_stops_its_server_and_removes_its_record(tmp_path: Path) -> None:
    build = _build(tmp_path, "600")
    os.kill(build["keeper"], signal.SIGTERM)
    assert _gone_within(build["keeper"], 15)
    assert not _records(tmp_path) and not _answers(build["url"])


def test_a_record_whose_keeper_is_gone_starts_a_new_server(tmp_path: Path) -> None:
    first = _build(tmp_path, "30")
    os.kill(first["keeper"], signal.SIGKILL)  # its record stays behind, its server dies with it
    assert _gone_within(first["keeper"], 10) and _records(tmp_path)
    deadline = time.monotonic() + 10
    while _answers(first["url"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _answers(first["url"])
    second = _build(tmp_path, "1")
    assert second["keeper"] != first["keeper"] and second["url"] != first["url"] and _answers(second["url"])
    (record,) = _records(tmp_path)
    assert json.loads(record.read_text())["keeper"] == second["keeper"]
    assert _gone_within(second["keeper"], 20)


def test_an_idle_time_of_zero_gives_each_build_its_own_server(tmp_path: Path) -> None:
    build = _build(tmp_path, "0")
    assert build["keeper"] is None and build["own"] is not None
    assert not _records(tmp_path) and not _answers(build["url"])  # stopped with its build


def test_a_home_without_file_locks_gives_the_build_its_own_server(tmp_path: Path) -> None:
    build = _build(tmp_path, "600", 0.0, "no-locks")
    assert build["keeper"] is None and build["own"] is not None
    assert not _records(tmp_path) and not _answers(build["url"])


@pytest.mark.parametrize("value", ["ten", "-1", "nan"])
def test_a_malformed_idle_time_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(prefect_env.IDLE_VARIABLE, value)
    with pytest.raises(CxrvqaError, match=rf"CXRVQA_PREFECT_SERVER_IDLE: expected seconds .*found '{value}'"):
        prefect_env.kept_idle_seconds()


def test_the_idle_time_is_ten_minutes_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prefect_env.IDLE_VARIABLE, raising=False)
    assert prefect_env.kept_idle_seconds() == 600
    monkeypatch.setenv(prefect_env.IDLE_VARIABLE, "0")
    assert prefect_env.kept_idle_seconds() == 0


def test_a_kept_server_whose_keeper_is_gone_is_an_error_with_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    log = tmp_path / "kept.log"
    log.write_text("address already in use\n")
    monkeypatch.setattr(prefect_env, "_local_server", None)
    monkeypatch.setattr(prefect_env, "_keeper", gone.pid)
    monkeypatch.setattr(prefect_env, "_server_log", log)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with pytest.raises(CxrvqaError, match=rf"stopped \(its keeper, process {gone.pid}, is gone\).*already in use"):
        prefect_env.wait_for_local_server(timeout=10)
