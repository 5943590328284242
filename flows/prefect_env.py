"""Prefect settings and a local API server that keep a build quiet, isolated and quick to start.

Measured on 2 cores (Prefect 3.8.8, see the closing notes of the foundation issue):
- Prefect's own ephemeral mode imports its server module in our process (~3 s) and then
  starts it (~4 s) on the first flow call. Starting the same server command ourselves, before
  `prefect` is imported, overlaps that start with our own imports and configuration.
- Each flow run's heartbeat thread is joined at exit in 1 s steps: every (sub-)flow took
  >= 1 s. A local run gains nothing from heartbeats (our `runs` table marks crashed builds).
- The server records task runs one transaction each; under load SQLite answers "database is
  locked" and the client backs off ~2 s. Batching the recorder avoids it.
- The server's start (~2.9 s of CPU importing its modules, ~3.5 s in all) competes with the build's own start on 2
  cores. The server is kept for the next build (`flows.kept_server`), `KEPT_IDLE_S` after the last build that used
  it, so that an edit-and-rebuild loop pays it once; builds started side by side share it.

Everything here applies only when the user has not pointed PREFECT_API_URL at a server.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import httpx

from cxrvqa.errors import CxrvqaError

#: The server this process started for itself (stopped on exit), or the keeper of the kept server it took (its pid),
#: the lease it holds on that one, and the server's log.
_local_server: subprocess.Popen | None = None
_keeper: int | None = None
_keeper_record: Path | None = None
_keeper_process: subprocess.Popen | None = None  # where this process started the keeper: kept from collection
_lease: IO[str] | None = None
_server_log: Path | None = None

#: Seconds a local server is kept for the next build after the last one that used it, by default (`IDLE_VARIABLE`).
#: Its start costs a build ~3.5 s of CPU on 2 cores while the build imports and starts beside it: a template edit of
#: 10k synthetic studies took 12.2-13.0 s starting its own server and 10.4-10.8 s taking the kept one (3 each). The
#: idle time is that of the build that started the server.
KEPT_IDLE_S = 600
IDLE_VARIABLE = "CXRVQA_PREFECT_SERVER_IDLE"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cxrvqa"


#: Prefect server services (`PREFECT_SERVER_SERVICES_<NAME>_ENABLED`) that a build never needs.
_SERVICES_NOT_USED = (
    "SCHEDULER",
    "LATE_RUNS",
    "FOREMAN",
    "REPOSSESSOR",
    "CLEANUP_RECONCILER",
    "TRIGGERS",
    "PAUSE_EXPIRATIONS",
    "CANCELLATION_CLEANUP",
)


def configure_prefect_environment() -> None:
    """Defaults for Prefect's settings; values the user set in the environment win. Call before importing prefect."""
    defaults = {
        # Ephemeral mode keeps its SQLite database here; reusing it skips fresh migrations.
        "PREFECT_HOME": str(cache_dir() / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_UI_ENABLED": "false",
        # A first start migrates a fresh SQLite database: ~15 s alone, much more on a loaded 2-core machine.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",  # read as int: keep it whole
        # The server registers every installed collection's block types at start (importing prefect-dask and
        # distributed to find them): ~0.45 s of its ~3.7 s start on 2 cores. A build stores no blocks.
        "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
        # The server's services for deployments, work pools, automations, pauses and cancellations: a build uses
        # none, and their loops start with it (10k synthetic build, 2 runs each: the server's CPU 5.9/5.8 -> 5.2/5.5
        # s, the reports stage, which they overlap, 3.3/2.7 -> 2.7/2.6 s). The recorders of runs and events stay.
        **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in _SERVICES_NOT_USED},
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    # Prefect creates only the last level of its home; without it the server cannot open its database.
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)


def uses_local_server() -> bool:
    """True unless the user pointed PREFECT_API_URL at a server of their own."""
    return _local_server is not None or _keeper is not None or not os.environ.get("PREFECT_API_URL")


def die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (Linux), so no server is orphaned."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a process; kill it where it has not exited 10 s later."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stop_local_server() -> None:
    global _local_server
    if _local_server is None:
        return
    stop_process(_local_server)
    _local_server = None
    if _server_log is not None:
        _server_log.unlink(missing_ok=True)


def start_local_server() -> None:
    """Start Prefect's API server now (what ephemeral mode would start later), or take the one a build before
    left running (`kept_idle_seconds`), and point the client at it.

    Does nothing when PREFECT_API_URL is set or when `prefect` is already imported (its
    settings are fixed by then; Prefect's own ephemeral mode is used instead).
    """
    if _local_server is not None or _keeper is not None or os.environ.get("PREFECT_API_URL"):
        return
    if "prefect" in sys.modules:
        return
    configure_prefect_environment()
    idle = kept_idle_seconds()
    if not (idle > 0 and _took_kept_server(idle)):
        _start_own_server()


def kept_idle_seconds() -> float:
    """How long a local server is kept after the last build that used it (`IDLE_VARIABLE`, seconds; 0: each build
    starts its own and stops it on exit)."""
    value = os.environ.get(IDLE_VARIABLE, str(KEPT_IDLE_S))
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # NaN too
        raise CxrvqaError(f"{IDLE_VARIABLE}: expected seconds (0: no kept server), found {value!r}")
    return seconds


def _server_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def _server_environment() -> dict[str, str]:
    """The server's environment: this process's less cxrvqa's own variables (the pseudonym key has no business in a
    server that outlives the build), with Prefect's home as an absolute path (a kept server runs from another
    folder)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CXRVQA_")}
    environment["PREFECT_HOME"] = str(Path(environment["PREFECT_HOME"]).expanduser().resolve())
    return {**environment, "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_own_server() -> None:
    """A server of this process's own, stopped when it exits."""
    global _local_server, _server_log
    port = _free_port()
    # A file, not a pipe: nobody reads a pipe while the build runs, and a full one would block the server.
    _server_log = Path(os.environ["PREFECT_HOME"]).expanduser() / f"local-server-{os.getpid()}.log"
    with open(_server_log, "wb") as log:
        _local_server = subprocess.Popen(
            _server_command(port),
            env=_server_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    atexit.register(_stop_local_server)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"


def _took_kept_server(idle: float) -> bool:
    """The kept server of these settings (`_kept_stem`), started here when there is none; False where Prefect's home
    takes no file locks (a network filesystem: the build then starts a server of its own). This process holds the
    server's lease (a shared lock) until it exits, so that the server is not stopped while it runs; the lease's time
    is when a build last took or left it, from which the keeper counts the idle time (`flows.kept_server`)."""
    global _keeper, _keeper_record, _lease, _server_log
    environment = _server_environment()
    stem = _kept_stem(environment)
    record = Path(f"{stem}.json")
    try:
        _lease = open(f"{stem}.lease", "a")  # noqa: SIM115 - held until the process exits
        atexit.register(_leave_lease)
        if not _locked(_lease, fcntl.LOCK_SH):
            _leave_lease()
            return False
        os.utime(_lease.name)
        found = kept_server_of(record)
        if found is None:
            with open(f"{stem}.start", "a") as starting:
                if not _locked(starting, fcntl.LOCK_EX):  # one build starts it; one beside it waits and takes it
                    _leave_lease()
                    return False
                found = kept_server_of(record) or _start_kept_server(stem, idle, environment)
    except OSError as exc:
        raise CxrvqaError(
            f"the kept Prefect server's files {stem}.*: {exc} ({IDLE_VARIABLE}=0 gives the build a server of its own)"
        ) from exc
    (_keeper, port), _keeper_record = found, record
    _server_log = Path(f"{stem}.log")
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    return True


#: What `flock` raises where a filesystem takes no file locks.
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS})


def _locked(file: IO[str], operation: int) -> bool:
    """The lock taken (waiting for it); False where the filesystem takes none."""
    try:
        fcntl.flock(file, operation)
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return False
        raise
    return True


def _kept_stem(environment: dict[str, str]) -> Path:
    """The path stem of the kept server's files for this interpreter, Prefect version and Prefect settings (a build
    with other settings, or after an upgrade, starts a server of its own; the other stops once idle)."""
    settings = sorted((k, v) for k, v in environment.items() if k.startswith("PREFECT_") and k != "PREFECT_API_URL")
    key = json.dumps([_host(), sys.executable, version("prefect"), settings])
    return Path(environment["PREFECT_HOME"]) / f"cxrvqa-server-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _host() -> list[Any]:
    """This machine and process namespace: a Prefect home shared by hosts or containers holds a record per host
    (a keeper's pid and 127.0.0.1 mean nothing elsewhere)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = None
    return [socket.gethostname(), namespace]


def _start_kept_server(stem: Path, idle: float, environment: dict[str, str]) -> tuple[int, int]:
    """The keeper of a new server, in a session of its own (it outlives this process; Ctrl-C of this build does not
    reach it), and its record: (keeper pid, port)."""
    global _keeper_process
    port = _free_port()
    command = [sys.executable, "-m", "flows.kept_server", "--lease", f"{stem}.lease", "--record", f"{stem}.json"]
    command += ["--idle", str(idle), "--", *_server_command(port)]
    with open(f"{stem}.log", "wb") as log:
        _keeper_process = subprocess.Popen(
            command,
            env=environment,
            cwd=stem.parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    written = Path(f"{stem}.json.{os.getpid()}")
    try:
        _until_keeper_runs(_keeper_process, Path(f"{stem}.json"))
        written.write_text(json.dumps({"keeper": _keeper_process.pid, "port": port}))
        written.replace(f"{stem}.json")
    except OSError:
        _keeper_process.terminate()  # a keeper no build can find would run out its idle time for nothing
        raise
    return _keeper_process.pid, port


def _until_keeper_runs(process: subprocess.Popen, record: Path, timeout: float = 10.0) -> None:
    """Waits until /proc shows the keeper's command line: `Popen` returns once the exec closed the pipe it waits on,
    which the kernel does before it sets the new command line, so for a moment the keeper's reads empty, and a build
    that read the record then took it for a dead keeper and started a second one (three builds started together,
    the suite on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while not keeper_runs(process.pid, record):
        if process.poll() is not None or time.monotonic() > deadline:
            raise OSError(f"the keeper (process {process.pid}) did not start: exit code {process.poll()}")
        time.sleep(0.005)


def kept_server_of(record: Path) -> tuple[int, int] | None:
    """(keeper pid, port) of the kept server a record names, when its keeper still runs."""
    found = read_record(record)
    return found if found is not None and keeper_runs(found[0], record) else None


def read_record(record: Path) -> tuple[int, int] | None:
    """(keeper pid, port) as a kept server's record holds them (`_start_kept_server`); None for none readable."""
    try:
        data = json.loads(record.read_text())
        return int(data["keeper"]), int(data["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keeper_runs(pid: int, record: Path | None = None) -> bool:
    """Whether a keeper process (of this record, when given) runs under this pid. Its command line is read where
    /proc has it: a pid the system gave to another process since, or to another keeper, is not this keeper."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True  # PermissionError too: a process runs there
    except OSError:
        return False
    return b"flows.kept_server" in command and (record is None or os.fsencode(record) in command)


def _leave_lease() -> None:
    """This build's last use of the kept server: the lease's time, then its lock goes with the file."""
    global _lease
    if _lease is None:
        return
    with contextlib.suppress(OSError):
        os.utime(_lease.name)
    _lease.close()
    _lease = None


def _server_running() -> bool:
    if _local_server is not None:
        return _local_server.poll() is None
    return _keeper is not None and keeper_runs(_keeper, _keeper_record)


def _server_exit_note() -> str:
    if _local_server is not None:
        return f"exited with code {_local_server.returncode}"
    return f"stopped (its keeper, process {_keeper}, is gone)"


def wait_for_local_server(timeout: float = 180.0) -> None:
    """Block until the server started by start_local_server answers; a clear error if it died."""
    if _local_server is None and _keeper is None:
        return
    deadline = time.monotonic() + timeout
    url = os.environ["PREFECT_API_URL"] + "/health"
    # One client for every try: `httpx.get` makes a client, and its SSL context, per call (22 ms against 0.5 ms of CPU
    # a try; ~0.6 s over a build's start, taken from the server starting beside it on 2 cores).
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if not _server_running():
                message = _server_log.read_text(errors="replace")[-2000:] if _server_log else ""
                raise CxrvqaError(f"the local Prefect server {_server_exit_note()} (log {_server_log}): {message}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.05)
    kept = f" (kept by process {_keeper}, which `kill {_keeper}` stops; log {_server_log})" if _keeper else ""
    raise CxrvqaError(f"the local Prefect server did not answer {url} within {timeout:.0f} s{kept}")


@contextlib.contextmanager
def lean_local_runs() -> Iterator[None]:
    """No flow heartbeats when the server is ours: each one costs >= 1 s per flow run at exit."""
    if not uses_local_server():
        yield
        return
    from prefect.settings import temporary_settings

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


class _NotPrefectErrors(logging.Filter):
    """Drops Prefect's error records (a flow run's traceback) from a console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("prefect") and record.levelno >= logging.ERROR)


@contextlib.contextmanager
def prefect_errors_to(log_path: Path) -> Iterator[Path]:
    """Prefect's error records (the traceback of a failed flow run) go to ``log_path`` instead of the console,
    so that a user error reads as one line; the file is created only when there is something to write."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_path, delay=True, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    quiet = _NotPrefectErrors()
    prefect_logger = logging.getLogger("prefect")
    consoles = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    prefect_logger.addHandler(to_file)
    for handler in consoles:
        handler.addFilter(quiet)
    try:
        yield log_path
    finally:
        for handler in consoles:
            handler.removeFilter(quiet)
        prefect_logger.removeHandler(to_file)
        to_file.close()
