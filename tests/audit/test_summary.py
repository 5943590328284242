"""The audit's queries against the two-run build of conftest.py: counts match the views, filters narrow every
section, "as of run 1" reproduces what the views said right after run 1, and the comparison names what changed."""

from __future__ import annotations

from collections import Counter

import pytest

from cxrvqa.audit.summary import AuditFilters, as_of, audit, summarise
from cxrvqa.errors import ConfigError
from cxrvqa.store import Store
from tests.audit.conftest import Build, snapshot

pytestmark = pytest.mark.flow


def _failures(store: Store, where: str = "TRUE") -> list[tuple]:
    """(item key, template, validator, status, reason) of every current failure, straight from the views."""
    return store.query(
        "SELECT r.item_id, q.template_id, r.validator, r.status, r.reason FROM current_validation_results r "
        f"JOIN current_qa_items q USING (item_id, template_version, input_hash) WHERE r.status <> 'ok' AND {where}"
    )


def test_counts_match_the_views(audit_build: Build) -> None:
    with Store(audit_build.db, read_only=True) as store:
        summary = summarise(store)
        failures = _failures(store)
        items = store.query(
            "SELECT template_id, count(*), count(polarity), avg(polarity::INTEGER) FROM current_qa_items GROUP BY 1"
        )
        results = Counter(r[0] for r in store.query("SELECT validator FROM current_validation_results"))
        grades = dict(store.query("SELECT label, count(*) FROM current_qa_grades GROUP BY 1"))
        image_rejects = store.query("SELECT count(*) FROM current_image_rejects")[0][0]
    assert summary.as_of_run.run_id == summary.latest_run == audit_build.run2
    stages = {s.stage: s for s in summary.stages}
    assert [s.stage for s in summary.stages] == ["images", "reports", "extract", "boxes", "qa", "validate", "dataset"]
    assert (stages["images"].kept, stages["images"].rejected) == (7, image_rejects) == (7, 1)
    assert (stages["reports"].kept, stages["reports"].rejected) == (8, 1)  # demo 6 + s5 + s6; s8 empty
    assert (stages["extract"].kept, stages["extract"].failed) == (9, 1)  # 8 rules graphs + the llm one; its failure
    assert (stages["boxes"].kept, stages["boxes"].rejected) == (9, 2)  # 'No finding', past the border
    n_items = sum(n for _, n, _, _ in items)
    assert stages["qa"].kept == n_items
    worst = {}
    for item_id, _, _, status, _ in failures:
        worst[item_id] = max(worst.get(item_id, "warn"), status, key=["warn", "reject"].index)
    # the two planted answers, demo-s4's item asserting the finding its report hedges (demo/README.md; its choice
    # items are not kept: six studies balance no set of options with them) and the item of s50000005's lateral image
    # whose list answer names a side (its sentence answers quote no side there); demo-s3's "possibly increased"
    # effusion is no longer answered "worsened" (a hedged change: `change_hedges`)
    assert stages["validate"].rejected == Counter(worst.values())["reject"] == 4
    assert stages["validate"].warned == Counter(worst.values())["warn"] > 0
    assert stages["validate"].kept == n_items - len(worst)
    # reasons: every (validator, reason) with its count; the validators' failure rates and per-template rates
    by_reason = Counter((v, r) for _, _, v, _, r in failures)
    assert {(r.validator, r.reason): r.n for r in summary.reasons if r.stage == "validate"} == by_reason
    assert by_reason[("answer_program", "answer_mismatch")] == 2
    assert by_reason[("location_support", "side_not_in_evidence")] == 1
    validators = {v.validator: v for v in summary.validators}
    assert set(validators) == set(results)
    for name, v in validators.items():
        failing = sum(1 for _, _, validator, _, _ in failures if validator == name)
        assert (v.items, v.warned + v.rejected, v.failure_rate) == (
            results[name],
            failing,
            round(failing / results[name], 4),
        )
    templates = {t.template_id: t for t in summary.templates}
    for template_id, n, yes_no, positive in items:
        failing = {item for item, template, *_ in failures if template == template_id}
        t = templates[template_id]
        assert (t.items, t.yes_no, t.warned + t.rejected, t.failure_rate) == (
            n,
            yes_no,
            len(failing),
            round(len(failing) / n, 4),
        )
        # a list template without yes/no items: the share of its items naming a finding (every one here)
        assert t.positive_share == (round(positive, 4) if positive is not None else 1.0 if t.lists else None)
    assert {t for t, v in templates.items() if v.lists} == {"region_findings", "study_abnormalities"}
    assert {g.label: g.n for g in summary.grades if g.n} == grades
    assert sum(g.share for g in summary.grades) == pytest.approx(1.0, abs=1e-3)
    # shares within the stage's failures, rates over the stage's inputs
    image = next(r for r in summary.reasons if r.stage == "images")
    assert (image.reason, image.n, image.share, image.rate) == ("unsupported_modality", 1, 1.0, 0.125)
    assert summary.failing_items == len(worst)


def test_failing_items_come_rejects_first_then_one_per_reason(audit_build: Build) -> None:
    with Store(audit_build.db, read_only=True) as store:
        summary = summarise(store, limit=10)
        parts = store.query(
            "SELECT text FROM current_qa_answer_parts WHERE item_id = ? ORDER BY part_index",
            [summary.examples[0].item_id],
        )
    assert len(summary.examples) == 10
    # the four rejects (the two planted answers, demo-s4's hedged finding, the item of s50000005's lateral image that
    # names a side), one per validator and reason in turn, then the rest
    assert [e.status for e in summary.examples[:4]] == ["reject"] * 4 and summary.examples[4].status == "warn"
    assert [(e.failures[0].validator, e.failures[0].reason) for e in summary.examples[:4]] == [
        ("answer_program", "answer_mismatch"),
        ("left_right_view", "left_right_not_frontal"),
        ("second_reading", "second_reading_hedged"),
        ("answer_program", "answer_mismatch"),
    ]
    assert {(e.study_id, e.view) for e in summary.examples[:4] if e.failures[0].validator == "left_right_view"} == {
        ("s50000005", "LATERAL, lateral")
    }
    assert {e.template_id for e in summary.examples[:4] if e.failures[0].validator == "answer_program"} == {
        "finding_side",
        "cardiothoracic_ratio",
    }
    assert {e.study_id for e in summary.examples[:4] if e.failures[0].validator == "second_reading"} == {"demo-s4"}
    side = next(e for e in summary.examples if e.template_id == "finding_side")
    assert side.answer == "left" and side.grade == "D" and side.study_id == "demo-s1"
    assert [(f.validator, f.reason) for f in side.failures] == [
        ("answer_program", "answer_mismatch"),
        ("location_support", "side_not_in_evidence"),
    ]
    assert side.failures[0].detail == "answer: the answer program gives 'right', found 'left'"
    assert side.view == "PA, frontal" and [f.strictness for f in side.failures] == ["reject"] * 2
    ratio = next(e for e in summary.examples if e.template_id == "cardiothoracic_ratio")
    assert {b["label"] for b in ratio.boxes} == {"heart", "chest"}
    assert [p["text"] for p in summary.examples[0].answer_parts] == [t for (t,) in parts]
    assert [e.status for e in summary.examples[8:]] == ["warn"] * 2
    assert {f.reason for e in summary.examples[8:] for f in e.failures} == {"no_image"}
    assert [(e.view, e.failures[0].strictness) for e in summary.examples[8:]] == [(None, "warn")] * 2


def test_filters_narrow_every_section(audit_build: Build) -> None:
    with Store(audit_build.db, read_only=True) as store:
        by_validator = summarise(store, AuditFilters(validator="answer_program"))
        by_template = summarise(store, AuditFilters(template="finding_side"))
        by_reason = summarise(store, AuditFilters(reason="no_image"), limit=1000)
        images_only = summarise(store, AuditFilters(stage="images"))
        no_image = _failures(store, "r.reason = 'no_image'")
        side_items = store.query("SELECT count(*) FROM current_qa_items WHERE template_id = 'finding_side'")[0][0]
    # a validator: only QA-level sections, only its failures; grades and items are those failing it
    assert [s.stage for s in by_validator.stages] == ["qa", "validate"]
    assert {(r.stage, r.validator, r.reason) for r in by_validator.reasons} == {
        ("validate", "answer_program", "answer_mismatch")
    }
    assert [v.validator for v in by_validator.validators] == ["answer_program"]
    assert by_validator.stages[0].kept == by_validator.failing_items == 2
    assert {g.label: g.n for g in by_validator.grades if g.n} == {"D": 2}
    assert sum(t.rejected for t in by_validator.templates) == 2 and by_validator.rejects == {}
    assert by_validator.disagreements is None and by_validator.dataset_checks_run is None
    # a template: its items only, everywhere
    assert [t.template_id for t in by_template.templates] == ["finding_side"]
    assert by_template.stages[0].kept == side_items
    assert {e.template_id for e in by_template.examples} == {"finding_side"}
    assert all(v.items == side_items for v in by_template.validators)
    # a reason: every stage's rows with that code, items failing for it
    assert {(r.stage, r.reason) for r in by_reason.reasons} == {("validate", "no_image")}
    assert by_reason.failing_items == len({row[0] for row in no_image}) == len(by_reason.examples)
    assert {e.study_id for e in by_reason.examples} == {"audit-s5", "audit-s6"}
    assert [s.stage for s in by_reason.stages][:4] == ["images", "reports", "extract", "boxes"]
    assert by_reason.stages[0].rejected == 0 and by_reason.stages[0].kept == 7
    # a stage: that stage's sections only
    assert [s.stage for s in images_only.stages] == ["images"]
    assert [r.reason for r in images_only.reasons] == ["unsupported_modality"]
    assert list(images_only.rejects) == ["images"] and images_only.templates == [] and images_only.grades == []
    assert images_only.rejects["images"][0]["source_path"] == "other/ct_slice.dcm"


def test_unknown_filters_and_runs_are_clear_errors(audit_build: Build) -> None:
    with Store(audit_build.db, read_only=True) as store:
        with pytest.raises(ConfigError, match=r"--stage: unknown stage 'audit'; stages are \['images'"):
            summarise(store, AuditFilters(stage="audit"))
        with pytest.raises(ConfigError, match=r"--validator: 'no_such' is not in this build; found \['answer_format'"):
            summarise(store, AuditFilters(validator="no_such"))
        with pytest.raises(ConfigError, match="--template: 'no_such' is not in this build"):
            summarise(store, AuditFilters(template="no_such"))
        with pytest.raises(ConfigError, match=f"no run 'nope' in this build; latest runs: {audit_build.run2}"):
            summarise(store, run_id="nope")
        unknown_reason = summarise(store, AuditFilters(reason="no_such_reason"))
    assert unknown_reason.notes == ["reason 'no_such_reason' occurs in no run of this build"]
    assert unknown_reason.reasons == [] and unknown_reason.failing_items == 0


def test_as_of_run_1_reproduces_what_the_views_said_then(audit_build: Build) -> None:
    first = audit_build.snapshot1
    with Store(audit_build.db, read_only=True) as store:
        then = summarise(store, run_id=audit_build.run1)
        with as_of(store, audit_build.run1):
            replayed = snapshot(store)
        current = summarise(store)
        latest = summarise(store, run_id=audit_build.run2)
        left_behind = (
            store.query("SELECT count(*) FROM duckdb_tables() WHERE temporary")[0][0]
            + store.query("SELECT count(*) FROM duckdb_views() WHERE temporary AND NOT internal")[0][0]
        )
    assert left_behind == 0, "as_of and the audit tables leave nothing behind"
    assert replayed["qa_items"] == first["qa_items"] and replayed["reports"] == first["reports"]
    assert replayed["templates"] == first["templates"] and replayed["grades"] == first["grades"]
    # the failures of run 1 were all on the report-only study; the tampered answers were still 'ok' then
    assert {(r.validator, r.reason): r.n for r in then.reasons if r.stage == "validate"} == first["failures"]
    assert ("answer_program", "answer_mismatch") not in first["failures"]
    assert next(s for s in then.stages if s.stage == "qa").kept == first["qa_items"]
    assert next(s for s in then.stages if s.stage == "reports").rejected == 0
    assert then.as_of_run.run_id == audit_build.run1 and then.latest_run == audit_build.run2
    assert latest.as_dict() == current.as_dict()


def test_compare_names_the_reasons_and_templates_that_changed(audit_build: Build) -> None:
    first = audit_build.snapshot1
    with Store(audit_build.db, read_only=True) as store:
        summary = audit(store, compare_run=audit_build.run1)
        now = Counter((v, r) for _, _, v, _, r in _failures(store))
        templates_now = dict(store.query("SELECT template_id, count(*) FROM current_qa_items GROUP BY 1"))
    comparison = summary.compare
    assert comparison.baseline.run_id == audit_build.run1
    reasons = {c.key: (c.before, c.after, c.delta) for c in comparison.reasons}
    assert reasons["validate/answer_program: answer_mismatch"] == (0, 2, 2)
    assert reasons["validate/location_support: side_not_in_evidence"] == (0, 1, 1)
    no_image = (first["failures"][("image", "no_image")], now[("image", "no_image")])
    assert reasons["validate/image: no_image"] == (*no_image, no_image[1] - no_image[0]) and no_image[1] > no_image[0]
    assert reasons["reports: empty_report"] == (0, 1, 1) and reasons["extract: llm_invalid_response"] == (0, 1, 1)
    assert [abs(c.delta) for c in comparison.reasons] == sorted(
        (abs(c.delta) for c in comparison.reasons), reverse=True
    )
    templates = {t.template_id: t for t in comparison.templates}
    changed_counts = {t for t in templates_now if templates_now[t] != first["templates"].get(t, 0)}
    assert changed_counts and changed_counts <= set(templates)
    for template_id in changed_counts:
        assert (templates[template_id].items_before, templates[template_id].items_after) == (
            first["templates"].get(template_id, 0),
            templates_now[template_id],
        )
    side = templates["finding_side"]
    assert side.failure_rate_after > side.failure_rate_before
    stage_keys = {c.key: c.delta for c in comparison.stages}
    assert stage_keys["validate.rejected"] == 2 and stage_keys["reports.kept"] == 1
    assert {c.key: c.delta for c in comparison.grades}["D"] == 2


def test_rules_vs_llm_disagreements_where_both_backends_ran(audit_build: Build) -> None:
    with Store(audit_build.db, read_only=True) as store:
        summary = summarise(store, limit=5)
        extract_only = summarise(store, AuditFilters(stage="extract"))
        by_template = summarise(store, AuditFilters(template="finding_side"))
        rules = store.query(
            "SELECT laterality FROM current_observations WHERE study_id = 'demo-s1' "
            "AND backend = 'rules' AND finding = 'pneumothorax'"
        )
    agreement = summary.disagreements
    assert (agreement.studies_with_both, agreement.studies_disagreeing) == (1, 1)
    assert agreement.by_finding == [
        {"finding": "cardiomegaly", "disagreement": "presence", "n": 1},
        {"finding": "pneumothorax", "disagreement": "laterality", "n": 1},
    ]
    assert [
        (
            e["study_id"],
            e["finding"],
            e["rules_presence"],
            e["llm_presence"],
            e["rules_laterality"],
            e["llm_laterality"],
        )
        for e in agreement.examples
    ] == [
        ("demo-s1", "cardiomegaly", "absent", "present", None, None),  # "The heart size is normal."
        ("demo-s1", "pneumothorax", "present", "present", rules[0][0], "left"),
    ]
    assert extract_only.disagreements == agreement and by_template.disagreements is None
    assert [s.stage for s in extract_only.stages] == ["extract"]


def test_the_change_log_against_the_previous_run(audit_build: Build) -> None:
    """Issue 17: the audit carries `cxrvqa diff` of the run before it: run 2 added audit-s6 (a new report: its
    items are added by `input edit`, nothing else is) and edited no report; run 1 has no run before it."""
    with Store(audit_build.db, read_only=True) as store:
        summary = audit(store)
        first = audit(store, run_id=audit_build.run1)
        new_items = store.query("SELECT count(*) FROM current_qa_items WHERE study_id = 'audit-s6'")[0][0]
    changes = summary.changes
    assert (summary.changes_from, changes.run_a, changes.run_b) == (
        audit_build.run1,
        audit_build.run1,
        audit_build.run2,
    )
    assert new_items > 0 and changes.counts[("added", "input edit")] == new_items
    assert {cause for kind, cause in changes.counts if cause == "input edit"} == {"input edit"}
    assert changes.counts[("removed", "input edit")] == 0
    assert (changes.studies["new"], changes.studies["edited"], changes.studies["retired"]) == (1, 0, 0)
    assert summary.as_dict()["changes"]["studies"]["new"] == 1
    assert first.changes is None and first.changes_from is None and first.retired == []


def test_list_templates_have_a_positive_share(audit_build: Build) -> None:
    """Issue 17: the positive-share chart leaves out list templates. A list template's positive share is the
    share of its items whose list names a finding (its program never answers an empty list: 100% here, a prior
    the chart now shows); a yes/no template keeps its 'yes' share."""
    from cxrvqa.audit.html import render_page

    with Store(audit_build.db, read_only=True) as store:
        summary = audit(store)
        yes_share = store.query(
            "SELECT avg(polarity::INTEGER) FROM current_qa_items WHERE template_id = 'finding_presence'"
        )[0][0]
    templates = {t.template_id: t for t in summary.templates}
    regions = templates["region_findings"]
    assert regions.lists and regions.yes_no == 0 and regions.items > 0 and regions.positive_share == 1.0
    presence = templates["finding_presence"]
    assert not presence.lists and presence.positive_share == round(yes_share, 4)
    page = render_page(summary, {"gallery": [], "images": {}, "reports": {}}, "scope")
    chart = page[page.index('id="chart-positive"') :].split("</figure>")[0]
    assert 'data-label="region_findings" data-value="1.0"' in chart
    assert f"100.0% of {regions.items} (list)" in chart
