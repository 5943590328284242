"""The Dask cluster of a build with `executor.kind: dask`: where it is, and whether its workers can do their part.

What runs where: the flow process (where `cxrvqa build` runs) lists and hashes the inputs, reads each
batch's inputs from DuckDB, and merges each batch's results into it (DuckDB has one writer). The
workers run the stages' pure batch computations (render DICOMs, split reports, extract scene graphs
with the rules, generate and validate QA items) and write their results as Parquet shards, and the
PNGs, under the out folder. So every worker needs the same cxrvqa installed, the out folder at the
same path on a shared filesystem, the DICOM folder at the same path, and the Prefect API.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cxrvqa.config import ExecutorConfig
from cxrvqa.core.provenance import code_version
from cxrvqa.errors import ClusterError
from cxrvqa.store.shards import SHARDS_DIR

#: How long to wait for the scheduler to answer and for a first worker to join.
CONNECT_TIMEOUT_S = 30


@contextmanager
def scheduler_address(executor: ExecutorConfig) -> Iterator[str]:
    """The address of the build's scheduler: the configured cluster's, or that of a LocalCluster of
    single-threaded worker processes started here and stopped when the build ends."""
    import dask

    logging.getLogger("distributed").setLevel(logging.WARNING)  # it logs every client connection at INFO
    # a batch's inputs travel inside its task (~16 MB for a validation batch of 700 studies): that is the
    # design here, not the mistake that Dask's "large graph" warning is about
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GB"}):
        if executor.dask_address is not None:
            yield executor.dask_address
            return
        from distributed import LocalCluster

        # ":0": the scheduler's HTTP server on a free port, so that two builds on one machine do not collide
        with LocalCluster(
            n_workers=executor.dask_local_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.WARNING,
        ) as cluster:
            yield cluster.scheduler_address


def check_workers(
    address: str, out_dir: Path, api_url: str | None, inputs: tuple[Path, ...] = (), preload: tuple[str, ...] = ()
) -> int:
    """Fail with a ClusterError naming each worker that cannot do its part: that does not see this out folder
    (the same files, not just a folder of the same name), cannot write there, cannot see the ``inputs``
    folders it reads (the DICOMs), cannot reach the Prefect API, or runs another cxrvqa. Each worker also
    imports the ``preload`` modules now, all at once, instead of when its first batch arrives. Returns the
    number of workers."""
    from distributed import Client

    timeout = CONNECT_TIMEOUT_S
    token = secrets.token_hex(8)
    probe = Path(out_dir).resolve() / SHARDS_DIR / f".probe-{token}"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(token)
    try:
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(address, f"cannot connect to the scheduler: {exc}") from exc
        with client:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except TimeoutError as exc:
                raise ClusterError(address, f"no worker joined within {timeout:.0f} s") from exc
            try:
                answers = client.run(
                    probe_worker,
                    str(probe),
                    token,
                    api_url,
                    code_version(),
                    tuple(str(Path(p).resolve()) for p in inputs),
                    preload,
                )
            except Exception as exc:  # noqa: BLE001 - e.g. a worker without cxrvqa cannot even load the probe
                raise ClusterError(
                    address,
                    f"cannot run cxrvqa's check on the workers ({type(exc).__name__}: "
                    f"{exc}): install the same cxrvqa on every worker",
                ) from exc
    finally:
        probe.unlink(missing_ok=True)
    problems = [f"worker {worker}: {'; '.join(found)}" for worker, found in sorted(answers.items()) if found]
    if problems:
        raise ClusterError(address, " | ".join(problems))
    return len(answers)


def probe_worker(
    probe: str,
    token: str,
    api_url: str | None,
    expected_version: str,
    inputs: tuple[str, ...] = (),
    preload: tuple[str, ...] = (),
) -> list[str]:
    """On a worker: what stops it from doing its part (nothing: an empty list)."""
    import httpx

    problems = []
    for module in preload:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            problems.append(f"cannot import {module} ({exc})")
    folder = Path(probe).parent
    try:
        found = Path(probe).read_text()
        if found != token:
            problems.append(
                f"{probe} holds other content than the build wrote: the out folder at this path is "
                "another folder than the build's"
            )
    except OSError as exc:
        problems.append(
            f"cannot read {probe} ({exc.strerror or exc}): the out folder must be on a filesystem "
            "shared with every worker, mounted at the same path"
        )
    else:
        written = folder / f".probe-{token}-{os.getpid()}"
        try:
            written.write_text(token)
            written.unlink()
        except OSError as exc:
            problems.append(f"cannot write in {folder} ({exc.strerror or exc})")
    problems.extend(
        f"no folder {path}: input folders must be shared with every worker, at the same path"
        for path in inputs
        if not os.path.isdir(path)
    )
    if api_url:
        try:
            httpx.get(api_url.rstrip("/") + "/health", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            problems.append(
                f"cannot reach the Prefect API at {api_url} ({exc}): run a Prefect server that the "
                "workers can reach (prefect server start --host 0.0.0.0) and set PREFECT_API_URL to it"
            )
    if code_version() != expected_version:
        problems.append(
            f"runs cxrvqa {code_version()}, the build {expected_version}: install the same version on every worker"
        )
    return problems
