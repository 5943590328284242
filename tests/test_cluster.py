"""The check of a Dask cluster's workers, run here as a worker would run it (the cluster itself is exercised by
tests/flows/test_dask.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cxrvqa.cluster import check_workers, probe_worker
from cxrvqa.core.provenance import code_version
from cxrvqa.errors import ClusterError


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "shards" / ".probe-abc"
    path.parent.mkdir()
    path.write_text("abc")
    return path


def test_a_worker_that_sees_the_out_folder_and_runs_this_cxrvqa_is_fine(probe: Path, tmp_path: Path) -> None:
    assert probe_worker(str(probe), "abc", None, code_version(), (str(tmp_path),), ("cxrvqa.store.shards",)) == []
    assert sorted(p.name for p in probe.parent.iterdir()) == [".probe-abc"]  # its own test file is gone


def test_each_problem_of_a_worker_is_named(probe: Path, tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port where no Prefect API listens
        unused.bind(("127.0.0.1", 0))
        api = f"http://127.0.0.1:{unused.getsockname()[1]}/api"
    problems = probe_worker(str(probe), "xyz", api, "0.0.1+other", (str(tmp_path / "dicom"),), ("cxrvqa.no_such",))
    assert len(problems) == 5
    assert problems[0] == "cannot import cxrvqa.no_such (No module named 'cxrvqa.no_such')"
    assert problems[1] == (
        f"{probe} holds other content than the build wrote: the out folder at this path is "
        "another folder than the build's"
    )
    assert problems[2] == (
        f"no folder {tmp_path / 'dicom'}: input folders must be shared with every worker, at the same path"
    )
    assert problems[3].startswith(f"cannot reach the Prefect API at {api} (")
    assert problems[3].endswith("(prefect server start --host 0.0.0.0) and set PREFECT_API_URL to it")
    assert problems[4] == (
        f"runs cxrvqa {code_version()}, the build 0.0.1+other: install the same version on every worker"
    )


def test_a_worker_without_the_out_folder_is_told_to_share_it(tmp_path: Path) -> None:
    [problem] = probe_worker(str(tmp_path / "elsewhere" / ".probe-abc"), "abc", None, code_version())
    assert problem.startswith(f"cannot read {tmp_path / 'elsewhere' / '.probe-abc'} (No such file or directory)")
    assert problem.endswith("the out folder must be on a filesystem shared with every worker, mounted at the same path")


def test_an_unreachable_scheduler_is_a_cluster_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cxrvqa import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(ClusterError, match=f"^Dask cluster {address}: cannot connect to the scheduler"):
        check_workers(address, tmp_path, None)
    assert list((tmp_path / "shards").iterdir()) == []  # the probe file is gone
