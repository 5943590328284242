"""The one configuration model: paths, limits, seeds, backends, strictness.

Loaded from a YAML or TOML file, then overridden by CLI flags; the resolved model is
stored (secrets excluded) with every run.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from cxrvqa.core.resources import load_yaml
from cxrvqa.errors import ConfigError

#: Every stage of the pipeline, in execution order (DESIGN.md, "The stage contract").
PIPELINE_STAGES = ("images", "reports", "extract", "qa", "validate")
#: The stages this version implements; requesting another one is a clear error.
AVAILABLE_STAGES = ("images", "reports", "extract", "qa", "validate")

#: A memory size as DuckDB reads it ("512MB", "1.5 GiB"): the number, then the unit's prefix.
MEMORY_SIZE = r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?)B$"
_SIZE_UNITS = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def size_bytes(size: str) -> float:
    """The bytes of a `MEMORY_SIZE`."""
    found = re.fullmatch(MEMORY_SIZE, size.strip())
    if found is None:
        raise ValueError(f"memory size {size!r}: expected a number and a unit, like '512MB' or '1.5 GiB'")
    return float(found.group(1)) * _SIZE_UNITS[found.group(2)]


DEMO_PSEUDONYM_KEY = "cxrvqa-demo-key-NOT-SECRET"
PSEUDONYM_KEY_ENV = "CXRVQA_PSEUDONYM_KEY"
LLM_API_KEY_ENV = "CXRVQA_LLM_API_KEY"

Strictness = Literal["ignore", "warn", "reject"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ImagingConfig(_Section):
    """How DICOMs are accepted and rendered to PNG."""

    scale: float = Field(0.25, gt=0, le=1, description="PNG size as a fraction of each dimension (ReXVQA: 0.25).")
    longest_side: int | None = Field(
        None, ge=16, description="If set, PNG longest side in pixels instead of `scale` (never upscales)."
    )
    png_compress_level: int = Field(
        1, ge=0, le=9, description="zlib level; 1 is ~5x faster than 6 for ~15% more bytes."
    )
    max_pixels: int = Field(
        50_000_000, ge=1, description="Reject images whose declared Rows x Columns exceed this, before decoding."
    )
    percentile_window: tuple[float, float] = Field(
        (0.5, 99.5), description="Window used when the header has neither a VOI LUT nor a window."
    )
    accept_empty_body_part: bool = Field(True, description="Accept CR/DX whose BodyPartExamined is empty.")
    accept_burned_in_annotation: bool = Field(
        False,
        description=(
            "Keep DICOMs whose BurnedInAnnotation is YES (identifying text in the pixels); rejected by default."
        ),
    )
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="Processes for decoding.")
    batch_size: int = Field(256, ge=1, description="Files per Prefect task.")
    rehash: bool = Field(
        False,
        description=(
            "Hash every input file (sha256) to find what changed. By default a rebuild hashes only the files whose "
            "size, modification time or inode differ from what the last build recorded (and new files): a file "
            "rewritten with the same size and its modification time set back is only found with rehash."
        ),
    )

    @model_validator(mode="after")
    def _check_window(self) -> "ImagingConfig":
        low, high = self.percentile_window
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentile_window must satisfy 0 <= low < high <= 100, found {self.percentile_window}")
        return self


class ReportLimitsConfig(_Section):
    """Bounds of the report stage."""

    max_chars: int = Field(200_000, ge=1, description="Reject longer reports (report_too_long).")
    batch_size: int = Field(
        5000,
        ge=1,
        description=(
            "Reports per Prefect task (one transaction). The stage's flow process reads, writes and commits each "
            "batch; 100k synthetic reports, 2 cores: 21.6-21.9 s in batches of 5,000 against 25.7-29.7 s of 1,000."
        ),
    )
    reread: bool = Field(
        False,
        description=(
            "Read the whole reports input on every build. By default a rebuild whose reports files have the size, "
            "modification time and inode of the last complete read (and a store as that read left it) reads "
            "nothing and counts every record as skipped; a file rewritten with the same size and its modification "
            "time set back is only read again with reread."
        ),
    )


class PrivacyConfig(_Section):
    """Pseudonymisation of DICOM identifiers."""

    pseudonym_key: SecretStr | None = Field(
        None,
        exclude=True,
        description=f"Key of the keyed hash for identifiers; defaults to ${PSEUDONYM_KEY_ENV}. Never stored.",
    )

    def resolved_key(self) -> tuple[bytes, bool]:
        """The key bytes and whether the built-in demo key is in use."""
        if self.pseudonym_key is not None and self.pseudonym_key.get_secret_value():
            return self.pseudonym_key.get_secret_value().encode("utf-8"), False
        from_env = os.environ.get(PSEUDONYM_KEY_ENV, "")
        if from_env:
            return from_env.encode("utf-8"), False
        return DEMO_PSEUDONYM_KEY.encode("utf-8"), True

    def key_fingerprint(self) -> str:
        """A non-reversible id of the key, so runs with different keys can be told apart."""
        key, _ = self.resolved_key()
        return hmac.new(key, b"cxrvqa-key-fingerprint", hashlib.sha256).hexdigest()[:12]


class LLMConfig(_Section):
    """The `llm` extraction backend: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp)."""

    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1, http://localhost:8000/v1.")
    model: str | None = Field(None, description="Model name as the server knows it.")
    api_key_env: str = Field(LLM_API_KEY_ENV, description="Environment variable holding the API key (never stored).")
    prompt: str = Field("report_observations", description="Prompt id: prompts/extraction/<id>.md.")
    response_mode: Literal["json_schema", "json_object"] = Field(
        "json_schema", description="json_schema: strict structured output; json_object: schema in the prompt."
    )
    temperature: float = Field(0.0, ge=0, le=2)
    max_concurrency: int = Field(16, ge=1, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per request.")
    max_attempts: int = Field(4, ge=1, description="Per report: errors, rate limits and invalid answers count.")
    max_requests: int | None = Field(None, ge=1, description="Budget per run: requests.")
    max_tokens: int | None = Field(None, ge=1, description="Budget per run: prompt + completion tokens.")


class ExtractionConfig(_Section):
    """Reports -> scene graphs."""

    backend: Literal["rules", "llm"] = Field(
        "rules", description="rules: offline spaCy rules; llm: an OpenAI-compatible server."
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Processes for the rules backend, and for parsing reports past the first 5,000 records.",
    )
    batch_size: int = Field(1000, ge=1, description="Studies per Prefect task.")
    llm: LLMConfig = Field(default_factory=LLMConfig)


class QAConfig(_Section):
    """Scene graphs + question templates -> QA items."""

    template_dirs: list[Path] = Field(
        default_factory=list,
        description=(
            "Folders of your own template .yaml files, loaded beside the built-in ones (stored absolute with the run; "
            "a later build without --templates keeps them)."
        ),
    )
    program_modules: list[Path] = Field(
        default_factory=list,
        description=(
            "Python files of your own answer programs (plugins registering with cxrvqa.qa.programs.program), stored "
            "absolute with the run; a later build, status, audit and validate-file load them again."
        ),
    )
    backend: Literal["rules", "llm"] | None = Field(
        None, description="Scene graphs of this extraction backend (default: extraction.backend)."
    )
    boxes: list[Path] = Field(
        default_factory=list,
        description=(
            "Box annotation CSVs (VinDr or NIH style) imported before generation, for box and geometric questions."
        ),
    )
    positive_share: float = Field(
        0.4,
        gt=0,
        lt=1,
        description=(
            "Target share of 'yes' answers per yes/no template (VinDr-CXR-VQA: 41.7%); 'no' items are sampled down."
        ),
    )
    balance: Literal["per_question", "per_template"] = Field(
        "per_question",
        description=(
            "per_question: per template and arguments (e.g. per finding), keep the rare answer's items and as many of "
            "the other as reach positive_share, chosen by item hash; a question that never gets one of the answers "
            "keeps no yes/no item (counted in the audit), so that the question alone does not give the answer away. "
            "per_template: per template only (the question-only baseline then stays high)."
        ),
    )
    balance_tolerance: float = Field(
        0.05,
        ge=0,
        lt=1,
        description=(
            "Stable balancing: a rebuild keeps the previous balance's item-hash thresholds of a question (or keep "
            "rates of a template) while the 'yes' share they give stays within this distance of the target (or each "
            "side within one item of its quota), so that an edit to a few studies flips no item of another study; "
            "a question that leaves it is balanced again (qa_question_balance.basis 'rebalanced')."
        ),
    )
    prior_margin: float = Field(
        0.15,
        gt=0,
        lt=1,
        description=(
            "Dataset check question_prior: a yes/no or multiple-choice template fails when the question-only "
            "baseline answers more than chance + this share of its held-out items (a per-question balance at "
            "positive_share 0.4 leaves the majority 'no' 0.6 of each question: the default bound is 0.65)."
        ),
    )
    splits: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1},
        description="Patient-level split shares (keyed hash of the patient id).",
    )
    split_from: Literal["hash", "manifest"] = Field(
        "hash",
        description=(
            "hash: the shares above; manifest: the dataset's official split from its metadata (MIMIC-CXR-JPG's "
            "split file) where a study has one, the shares for the others."
        ),
    )
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="Generation processes.")
    batch_size: int = Field(
        2000,
        ge=1,
        description=(
            "Studies per Prefect task (QA and validation); up to 5x as many where they have little to do (a "
            "template's rebuild), on the local executor."
        ),
    )

    @field_validator("template_dirs", "program_modules")
    @classmethod
    def _absolute(cls, paths: list[Path]) -> list[Path]:
        """Stored with the run: a relative path would mean another folder to a `status` run elsewhere."""
        return [Path(os.path.abspath(Path(p).expanduser())) for p in paths]  # normalised: no '..' parts

    @field_validator("splits")
    @classmethod
    def _check_splits(cls, splits: dict[str, float]) -> dict[str, float]:
        if not splits or any(share <= 0 for share in splits.values()) or abs(sum(splits.values()) - 1) > 1e-6:
            raise ValueError(f"split shares must be positive and sum to 1, found {splits}")
        return splits


class JudgeConfig(_Section):
    """The optional LLM judge of the validation stage: CXR-QBA's quality criteria, asked of the server and
    model of `extraction.llm` (its connection, concurrency, attempts and budget settings)."""

    enabled: bool = Field(False, description="Judge QA items with the LLM after the rule-based validators.")
    prompt: str = Field("qa_item", description="Prompt id: prompts/judge/<id>.md.")
    model: str | None = Field(None, description="Judge model (default: extraction.llm.model).")
    min_grade: str = Field("B", description="Judge only items whose rule-based grade is at least this label.")
    max_items: int | None = Field(
        None,
        ge=1,
        description=(
            "Judge at most this many items per run (a stable sample: items in item-id order, which is a hash)."
        ),
    )
    batch_size: int = Field(500, ge=1, description="Items per Prefect task.")


class ExecutorConfig(_Section):
    """Where the stages' batches are computed. The flow process always reads the inputs from DuckDB and
    writes the results into it (one writer); with `dask`, the computing in between runs on a Dask cluster
    through Prefect's Dask task runner (prefect-dask), and results come back as Parquet shards under the
    out folder, which every worker must see (a shared filesystem, mounted at the same path)."""

    kind: Literal["local", "dask"] = Field(
        "local", description=("local: this machine's processes; dask: the workers of a Dask cluster.")
    )
    dask_address: str | None = Field(
        None, description=("Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786.")
    )
    dask_local_workers: int | None = Field(
        None,
        ge=1,
        description=(
            "Start a Dask LocalCluster with this many single-threaded worker processes for the build (to try the "
            "dask executor on one machine)."
        ),
    )

    @field_validator("dask_address")
    @classmethod
    def _check_address(cls, address: str | None) -> str | None:
        if address is not None and not re.fullmatch(r"([a-z]+://)?[^\s/:]+:[0-9]+", address):
            raise ValueError(f"expected a Dask scheduler address like tcp://HOST:PORT, found {address!r}")
        return address

    @model_validator(mode="after")
    def _check_cluster(self) -> "ExecutorConfig":
        cluster = {"dask_address": self.dask_address, "dask_local_workers": self.dask_local_workers}
        given = [name for name, value in cluster.items() if value is not None]
        if self.kind == "local" and given:
            raise ValueError(
                f"{' and '.join(given)} {'need' if len(given) > 1 else 'needs'} kind: dask (found kind: local)"
            )
        if self.kind == "dask" and len(given) != 1:
            raise ValueError(
                "kind: dask needs exactly one of dask_address (an existing cluster) or "
                f"dask_local_workers (a LocalCluster to start), found {given or 'neither'}"
            )
        return self


class Config(_Section):
    """Resolved settings of one build."""

    out_dir: Path = Field(Path("cxrvqa-out"), description="Output folder: PNGs and the DuckDB file.")
    images_dir: Path | None = Field(None, description="Folder tree of DICOM files (any names).")
    reports: Path | None = Field(None, description="Reports file or folder.")
    report_format: Literal["iu", "mimic", "jsonl", "csv", "chexpert_plus", "rexgradient"] = "jsonl"
    manifest: list[Path] = Field(
        default_factory=list,
        description=(
            "Metadata files linking images to studies (layouts in schemas/vocab/manifest_layouts.yaml): a dataset's "
            "own (MIMIC-CXR-JPG, CheXpert, NIH, PadChest, IU) or study_id, patient_id, image_path."
        ),
    )
    stages: list[str] = Field(default_factory=lambda: list(AVAILABLE_STAGES))
    limit: int | None = Field(
        None,
        ge=1,
        description=(
            "Read at most this many inputs per input stage: image files, and report records (a report or a reject)."
        ),
    )
    only_failed: bool = Field(
        False,
        description=(
            "Retry only what failed: images whose latest outcome is a decode or read failure, and studies whose "
            "extraction failed (also terminal LLM errors, asked again); new inputs wait for a normal build."
        ),
    )
    prune: bool = Field(
        False,
        description=(
            "The inputs are complete: retire the current studies whose report and the images whose file they no "
            "longer have (their items leave the current dataset; nothing is deleted). Without it a build warns how "
            "many are absent. Not with --limit (a part of the input)."
        ),
    )
    seed: int = 0

    @field_validator("manifest", mode="before")
    @classmethod
    def _one_or_more_manifests(cls, value: Any) -> Any:
        return [] if value is None else [value] if isinstance(value, str | Path) else value

    duckdb_memory_limit: str = Field(
        "512MB",
        pattern=MEMORY_SIZE,
        description=(
            "Cap on DuckDB's memory in a build (it spills to disk beyond it). 100k studies, 2 cores (2026-12-04): "
            "512MB held the build's main process at 1,015 MB against 1,494 MB with 1GB, QA 193 against 195 s and "
            "validation 231 against 249 s (its run 15 s longer: balancing spills); with 384MB a build stopped out "
            "of memory in QA's study inputs before they were read in ranges of studies (qa.stage.INPUT_RANGE)."
        ),
    )
    duckdb_validate_memory_limit: str = Field(
        "256MB",
        pattern=MEMORY_SIZE,
        description=(
            "DuckDB's cap while the validate stage's batches run (never above duckdb_memory_limit): each batch "
            "reads its own studies' rows once, so blocks cached beyond it serve nothing, and lowering the cap "
            "drops those the stages before left. 100k studies, 2 cores (2026-12-05): the stage's main process "
            "740 against 986 MB; validate-only reruns, 256MB against 512MB alternated: 10k +2%, 100k no difference."
        ),
    )

    duckdb_qa_memory_limit: str = Field(
        "256MB",
        pattern=MEMORY_SIZE,
        description=(
            "DuckDB's cap while the QA stage's batches run (never above duckdb_memory_limit): each batch reads its "
            "own studies' graphs once and appends its items. 100k studies, 2 cores (2026-12-07): the stage's main "
            "process 1,011 against 699 MB with 256MB (the whole tree's peak then in validation), QA 137.9 s against "
            "129.6 and 137.1 s at 512MB (one build each, builds varying by 10-20%: no cost shown, none ruled out)."
        ),
    )

    def validate_memory_limit(self) -> str:
        """`duckdb_validate_memory_limit`, or `duckdb_memory_limit` where that is lower."""
        return self._under_build_limit(self.duckdb_validate_memory_limit)

    def qa_memory_limit(self) -> str:
        """`duckdb_qa_memory_limit`, or `duckdb_memory_limit` where that is lower."""
        return self._under_build_limit(self.duckdb_qa_memory_limit)

    def _under_build_limit(self, limit: str) -> str:
        return min(limit, self.duckdb_memory_limit, key=size_bytes)

    extraction: ExtractionConfig = Field(default_factory=ExtractionConfig)
    qa: QAConfig = Field(default_factory=QAConfig)
    strictness: dict[str, Strictness] = Field(default_factory=dict, description="Validator name -> strictness.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    imaging: ImagingConfig = Field(default_factory=ImagingConfig)
    report_limits: ReportLimitsConfig = Field(default_factory=ReportLimitsConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @field_validator("stages")
    @classmethod
    def _check_stages(cls, stages: list[str]) -> list[str]:
        unknown = [s for s in stages if s not in PIPELINE_STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {list(PIPELINE_STAGES)}")
        unavailable = [s for s in stages if s not in AVAILABLE_STAGES]
        if unavailable:
            raise ValueError(
                f"stage(s) {unavailable} are not available in this version of cxrvqa; "
                f"available: {list(AVAILABLE_STAGES)}"
            )
        return [s for s in PIPELINE_STAGES if s in stages]

    @model_validator(mode="after")
    def _check_prune(self) -> "Config":
        if self.prune and self.limit is not None:
            raise ValueError(
                "--prune retires what the input lacks, and --limit reads a part of the input: give one of them"
            )
        return self

    @property
    def db_path(self) -> Path:
        return self.out_dir / "cxrvqa.duckdb"

    def uses_local_pool(self) -> bool:
        """Whether a stage may fan out over this machine's processes (`cxrvqa.core.parallel`): validation runs as many
        workers as the QA stage (`qa.workers`)."""
        workers = (self.imaging.workers, self.extraction.workers, self.qa.workers)
        return self.executor.kind == "local" and max(workers) > 1

    def stored_form(self) -> dict[str, Any]:
        """The JSON stored with a run: everything but secrets, plus the key's fingerprint."""
        data = self.model_dump(mode="json")
        data["privacy"]["key_fingerprint"] = self.privacy.key_fingerprint()
        data["privacy"]["demo_key"] = self.privacy.resolved_key()[1]
        return data


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(str(path), "config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in {".yaml", ".yml"}:
            data = load_yaml(text) or {}
        else:
            raise ConfigError(str(path), f"expected a .yaml, .yml or .toml file, found {path.suffix or 'no suffix'}")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot parse: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(str(path), f"expected a mapping at the top level, found {type(data).__name__}")
    return data


def merge_settings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Config from an optional file, then CLI overrides (nested dicts, None values ignored)."""
    data = read_config_file(path) if path else {}
    qa = data.get("qa")
    if path and isinstance(qa, dict):  # paths in a config file are relative to its folder
        for key in ("template_dirs", "program_modules"):
            if isinstance(qa.get(key), list):
                qa[key] = [
                    str(path.parent / p) if isinstance(p, str) and not Path(p).expanduser().is_absolute() else p
                    for p in qa[key]
                ]
    cleaned = drop_unset(overrides or {})
    try:
        return Config.model_validate(merge_settings(data, cleaned))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(str(path) if path else "command-line options", problems) from exc


def drop_unset(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = drop_unset(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
