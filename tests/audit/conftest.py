"""A build with two runs and known failures for the audit tests, and a headless Chromium for the page.

The build uses the bundled demo images, manifest and boxes, and the demo reports plus a few written here
(synthetic text, nobody's data):
- run 1: the demo reports and `audit-s5`, a report-only study (no image: its items warn `no_image`) whose
  indication and findings carry two XSS payloads;
- between the runs two stored answers are changed (as a generator bug would) and their validation cleared;
- run 2: the same plus `audit-s6` (report-only, another template mix) and `audit-s8`, an empty report
  (rejected); both changed answers are now rejected (`answer_mismatch`; the side one also
  `side_not_in_evidence`);
- after run 2, rows an LLM extraction would write are recorded: a failed one (study `audit-s7`) whose error
  holds a third payload, and an `llm` graph of demo-s1 that is the rules graph with the pneumothorax on
  the left (a laterality disagreement) and a present cardiomegaly the rules read as absent (a presence one).
`Build.run1` keeps counts read straight from the views right after run 1, for the "as of run 1" tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cxrvqa.cli import _demo_inputs
from cxrvqa.config import load_config, merge_settings
from cxrvqa.store import Store

XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=2</script>"
XSS_ERROR = '<svg onload="window.__xss=3"></svg>'
EXTRA_REPORTS = {
    "audit-s5": f"INDICATION: Cough {XSS_IMG} for two weeks.\nFINDINGS: Small left pleural effusion. "
    f"No pneumothorax. The heart size is normal. {XSS_SCRIPT}\nIMPRESSION: Small left pleural effusion.",
    "audit-s6": "INDICATION: Fever.\nFINDINGS: Right lower lobe consolidation. Mild cardiomegaly. "
    "No pleural effusion.\nIMPRESSION: Right lower lobe pneumonia.",
    "audit-s8": "",
}
#: The two answers changed between the runs: (template, study, new answer).
TAMPERED = (("finding_side", "demo-s1", "left"), ("cardiothoracic_ratio", "demo-s3", "0.99"))


@dataclass(frozen=True)
class Build:
    out: Path
    run1: str
    run2: str
    snapshot1: dict[str, Any]  # counts right after run 1

    @property
    def db(self) -> Path:
        return self.out / "cxrvqa.duckdb"


def _reports_file(path: Path, studies: tuple[str, ...]) -> Path:
    demo = Path(_demo_inputs()["reports"]).read_text(encoding="utf-8").splitlines()
    extra = [
        json.dumps({"study_id": s, "patient_id": s.replace("-s", "-p"), "text": EXTRA_REPORTS[s]}) for s in studies
    ]
    path.write_text("\n".join(demo + extra) + "\n", encoding="utf-8")
    return path


def snapshot(store: Store) -> dict[str, Any]:
    """The counts the audit of this moment must reproduce later (as of this run)."""
    return {
        "qa_items": store.query("SELECT count(*) FROM current_qa_items")[0][0],
        "reports": store.query("SELECT count(*) FROM current_reports")[0][0],
        "failures": dict(
            ((v, r), n)
            for v, r, n in store.query(
                "SELECT validator, reason, count(*) FROM current_validation_results WHERE status <> 'ok' GROUP BY ALL"
            )
        ),
        "templates": dict(store.query("SELECT template_id, count(*) FROM current_qa_items GROUP BY 1")),
        "grades": dict(store.query("SELECT label, count(*) FROM current_qa_grades GROUP BY 1")),
    }


@pytest.fixture(scope="session")
def audit_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    from flows.build import build_dataset

    out = tmp_path_factory.mktemp("audit") / "build"
    inputs = tmp_path_factory.mktemp("audit-inputs")

    def config(reports: Path):
        return load_config(
            None,
            merge_settings(
                _demo_inputs(),
                {
                    "reports": reports,
                    "out_dir": out,
                    "imaging": {"workers": 1},
                    "qa": {"workers": 1},
                    "extraction": {"workers": 1},
                },
            ),
        )

    run1 = build_dataset(config(_reports_file(inputs / "v1.jsonl", ("audit-s5",))))["run_id"]
    with Store(out / "cxrvqa.duckdb") as store:
        first = snapshot(store)
        for template, study, answer in TAMPERED:
            item_id = store.query(
                "SELECT item_id FROM current_qa_items WHERE template_id = ? AND study_id = ?", [template, study]
            )[0][0]
            store.con.execute("UPDATE qa_items SET answer = ? WHERE item_id = ?", [answer, item_id])
            store.con.execute("DELETE FROM validation_done WHERE item_id = ?", [item_id])
    run2 = build_dataset(config(_reports_file(inputs / "v2.jsonl", ("audit-s5", "audit-s6", "audit-s8"))))["run_id"]
    with Store(out / "cxrvqa.duckdb") as store:
        store.insert(
            "extraction_failures",
            [
                {
                    "study_id": "audit-s7",
                    "backend": "llm",
                    "input_hash": "0" * 64,
                    "extractor_version": "test",
                    "reason": "llm_invalid_response",
                    "error": f"the model answered {XSS_ERROR} instead of JSON",
                    "attempts": 4,
                    "raw_response": XSS_ERROR,
                    "usage": None,
                    "run_id": run2,
                    "code_version": "test",
                    "created_at": datetime.now(timezone.utc),
                }
            ],
        )
        store.con.execute(
            "INSERT INTO scene_graphs SELECT 'llm-' || graph_id, study_id, 'llm', report_hash, parser_version, "
            "input_hash, 'test', quality, n_observations + 1, graph, run_id, code_version, now() "
            "FROM current_scene_graphs WHERE study_id = 'demo-s1'"
        )
        store.con.execute(
            "INSERT INTO observations SELECT 'llm-' || graph_id, study_id, 'llm', obs_id, name, finding, "
            "unresolved_text, category, CASE WHEN finding = 'pneumothorax' THEN 'left' ELSE laterality END, "
            "presence, severity, change, modifiers, parent_id, from_report, derived_from, certainty "
            "FROM current_observations "
            "WHERE study_id = 'demo-s1' UNION ALL SELECT 'llm-' || graph_id, study_id, 'llm', 'o-extra', "
            "'cardiomegaly', 'cardiomegaly', NULL, 'cardiovascular', NULL, 'present', NULL, NULL, [], NULL, true, [], "
            "NULL "
            "FROM current_scene_graphs WHERE study_id = 'demo-s1' AND backend = 'rules'"
        )
    return Build(out, run1, run2, first)


# -- headless Chromium ---------------------------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _apt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["apt-get", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=900,
    )


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing (once per session; needs root)."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.fail(f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium package")
        install = _apt("install", "-y", "chromium")
        if install.returncode != 0:
            _apt("update")
            install = _apt("install", "-y", "chromium")
        if install.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(
                f"could not install Debian's chromium with apt-get (exit {install.returncode}; it needs "
                f"root and the Debian archive): {install.stderr[-2000:]}"
            )
    return CHROMIUM


@pytest.fixture
def browser(chromium: Path, tmp_path: Path):
    """A Playwright browser context on the system Chromium, with a fresh user-data dir (never
    `playwright install`: it downloads browsers)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests drive Chromium with playwright: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def open_page(browser, path: Path) -> tuple[Any, list[str], list[str]]:
    """A page of ``browser`` showing the file ``path``, with the URLs it requests and the errors it reports
    (page errors and console errors), for a self-contained page that must load nothing and fail nowhere."""
    page = browser.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_selector("article.item")
    return page, requests, errors
