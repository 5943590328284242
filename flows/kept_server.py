"""The keeper of a local Prefect server kept between builds (`flows.prefect_env`): it runs the server, and stops it
once no build has used it for its idle time.

A build holds the lease file's lock (shared) while it runs and sets the file's time when it takes and leaves the
server. The keeper stops the server only while it holds that lock itself (exclusive, never waiting for it): no build
runs on the server then, and one that starts meanwhile waits for the lock, then finds the record gone (the keeper
removes it before the server stops) and starts a new kept server. The server dies with its keeper (a keeper killed
leaves its record behind; a build reads it, finds no keeper under its pid and starts a new one).

    python -m flows.kept_server --lease PATH --record PATH --idle SECONDS -- SERVER COMMAND...
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.prefect_env import die_with_parent, read_record, stop_process

#: Seconds between the keeper's looks at the server and at the lease.
POLL_S = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.kept_server")
    parser.add_argument("--lease", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--idle", type=float, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("expected the server's command after --")
    signal.signal(signal.SIGTERM, _exit_on_signal)
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        while server.poll() is None:
            time.sleep(POLL_S)
            if _stopped_when_idle(args.lease, args.record, args.idle, server):
                break
    finally:
        _forget(args.record)
        stop_process(server)
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _stopped_when_idle(lease: Path, record: Path, idle: float, server: subprocess.Popen) -> bool:
    """Stops the server where no build holds the lease and none took or left it for ``idle`` seconds: the record
    goes first and the server stops, both under the lease's lock."""
    with open(lease, "a") as held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a build runs on the server
        if time.time() - os.stat(lease).st_mtime < idle:
            return False
        _forget(record)
        stop_process(server)
        return True


def _forget(record: Path) -> None:
    """The record removed where it still names this keeper (a record a later keeper wrote stays)."""
    found = read_record(record)
    if found is not None and found[0] == os.getpid():
        with contextlib.suppress(OSError):
            record.unlink()


if __name__ == "__main__":
    sys.exit(main())
