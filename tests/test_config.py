"""Configuration: files, flags, validation messages, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrvqa.config import DEMO_PSEUDONYM_KEY, PSEUDONYM_KEY_ENV, Config, load_config, size_bytes
from cxrvqa.errors import ConfigError


def test_yaml_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("out_dir: from-file\nseed: 7\nimaging:\n  scale: 0.5\n  workers: 3\n")
    config = load_config(path, {"out_dir": tmp_path / "flag", "imaging": {"workers": 1, "scale": None}})
    assert (config.out_dir, config.seed, config.imaging.scale, config.imaging.workers) == (tmp_path / "flag", 7, 0.5, 1)


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('limit = 10\n[imaging]\nlongest_side = 1024\n[strictness]\nno_deid_token = "warn"\n')
    config = load_config(path)
    assert (config.limit, config.imaging.longest_side, config.strictness) == (10, 1024, {"no_deid_token": "warn"})


def test_invalid_values_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("imaging:\n  scale: 3\n  colour: true\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "imaging.scale" in message and "imaging.colour" in message


def test_unknown_and_unavailable_stages_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown stage"):
        load_config(None, {"stages": ["images", "paint"]})
    monkeypatch.setattr("cxrvqa.config.AVAILABLE_STAGES", ("images", "reports"))
    with pytest.raises(ConfigError, match="not available in this version"):
        load_config(None, {"stages": ["validate"]})


def test_stages_run_in_pipeline_order() -> None:
    assert Config(stages=["images", "images"]).stages == ["images"]


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "c.ini").write_text("x=1")
    with pytest.raises(ConfigError, match="expected a .yaml, .yml or .toml file"):
        load_config(tmp_path / "c.ini")


def test_pseudonym_key_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    assert Config().privacy.resolved_key() == (DEMO_PSEUDONYM_KEY.encode(), True)
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "from-env")
    assert Config().privacy.resolved_key() == (b"from-env", False)
    explicit = Config(privacy={"pseudonym_key": "from-config"})
    assert explicit.privacy.resolved_key() == (b"from-config", False)
    assert "from-config" not in str(explicit.stored_form())
    assert explicit.privacy.key_fingerprint() != Config().privacy.key_fingerprint()


def test_the_executor_is_local_or_dask_on_exactly_one_cluster() -> None:
    assert Config().executor.kind == "local"
    assert (
        load_config(None, {"executor": {"kind": "dask", "dask_address": "tcp://10.0.0.5:8786"}}).executor.dask_address
        == "tcp://10.0.0.5:8786"
    )
    assert load_config(None, {"executor": {"kind": "dask", "dask_local_workers": 2}}).executor.dask_local_workers == 2
    for executor, problem in [
        (
            {"kind": "dask"},
            "executor: kind: dask needs exactly one of dask_address (an existing cluster) or "
            "dask_local_workers (a LocalCluster to start), found neither",
        ),
        (
            {"kind": "dask", "dask_address": "tcp://h:1", "dask_local_workers": 2},
            "found ['dask_address', 'dask_local_workers']",
        ),
        ({"dask_local_workers": 2}, "executor: dask_local_workers needs kind: dask (found kind: local)"),
        (
            {"kind": "dask", "dask_address": "h 1"},
            "executor.dask_address: expected a Dask scheduler address like tcp://HOST:PORT, found 'h 1'",
        ),
        ({"kind": "ray"}, "executor.kind: Input should be 'local' or 'dask'"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_config(None, {"executor": executor})
        assert problem in str(caught.value)


def test_the_qa_and_validate_stage_memory_caps_are_never_above_the_builds() -> None:
    assert [size_bytes(s) for s in ("512MB", "1.5 GiB", "100 KiB")] == [512e6, 1.5 * 2**30, 102400.0]
    assert Config().validate_memory_limit() == "256MB"
    assert Config(duckdb_memory_limit="200MiB").validate_memory_limit() == "200MiB"
    assert Config(duckdb_validate_memory_limit="1GB", duckdb_memory_limit="2GB").validate_memory_limit() == "1GB"
    with pytest.raises(ValueError, match="duckdb_validate_memory_limit"):
        Config(duckdb_validate_memory_limit="lots")
    assert Config().qa_memory_limit() == "256MB"
    assert Config(duckdb_memory_limit="200MiB").qa_memory_limit() == "200MiB"
    assert Config(duckdb_qa_memory_limit="1GB", duckdb_memory_limit="2GB").qa_memory_limit() == "1GB"
    with pytest.raises(ValueError, match="duckdb_qa_memory_limit"):
        Config(duckdb_qa_memory_limit="lots")
    with pytest.raises(ValueError, match="memory size '1.2.3MB': expected a number and a unit"):
        size_bytes("1.2.3MB")


def test_a_local_pool_is_used_where_a_stage_has_workers_to_fan_out_over() -> None:
    one = {"imaging": {"workers": 1}, "extraction": {"workers": 1}, "qa": {"workers": 1}}
    assert not Config(**one).uses_local_pool()
    assert Config(**{**one, "qa": {"workers": 2}}).uses_local_pool()
    assert Config(**{**one, "imaging": {"workers": 4}}).uses_local_pool()
    assert Config(**{**one, "extraction": {"workers": 2}}).uses_local_pool()
    dask = {"kind": "dask", "dask_local_workers": 2}
    assert not Config(**{**one, "qa": {"workers": 2}, "executor": dask}).uses_local_pool()
