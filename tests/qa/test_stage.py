"""The QA stage over a store: the real stage functions on synthetic scene graphs (balance, dedup, splits,
incremental reruns) and the real `build_dataset` flow on the bundled demo (determinism, rerun, boxes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cxrvqa.config import load_config
from cxrvqa.core.batch import run_batch
from cxrvqa.core.balance import Balanced, Quota, QuestionBalance, balance_questions, even_quota, stored_questions
from cxrvqa.core.parallel import batched
from cxrvqa.core.resources import resource
from cxrvqa.qa import stage
from cxrvqa.store import Store
from tests.qa import fill_store

TEMPLATES = 37
SNAPSHOT = "SELECT * EXCLUDE (run_id, created_at, code_version) FROM qa_items ORDER BY item_id"


def run_qa(store: Store, out: Path, run_id: str, **qa: object) -> SimpleNamespace:
    """The QA stage as the flow runs it: record inputs, pending work in batches, balance."""
    seed = qa.pop("seed", 0)
    config = load_config(None, {"out_dir": out, "seed": seed, "qa": {"workers": 1, **qa}})
    context = stage.prepare(config)
    n_studies = stage.record_inputs(store, run_id, context)
    total, pending = stage.pending_work(store, context)
    counts = [run_batch(stage, store, run_id, batch, context) for batch in batched(pending, 400)]
    return SimpleNamespace(
        context=context,
        n_studies=n_studies,
        total=total,
        pending=pending,
        counts=counts,
        balance=stage.balance(store, run_id, context),
    )


# -- synthetic store -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("qa-synthetic")
    store = Store(folder / "cxrvqa.duckdb")
    n_images = fill_store(store, 0, 1000, n_patients=400)
    result = run_qa(store, folder, "run-1", balance="per_template")
    yield SimpleNamespace(store=store, folder=folder, n_images=n_images, **vars(result))
    store.close()


@pytest.fixture(scope="module")
def per_question(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("qa-per-question")
    store = Store(folder / "cxrvqa.duckdb")
    fill_store(store, 0, 600, n_patients=300)
    result = run_qa(store, folder, "run-1")  # the default: balance per question
    yield SimpleNamespace(store=store, folder=folder, **vars(result))
    store.close()


@pytest.mark.parametrize(
    ("n_pos", "n_neg", "kept"),
    [
        (10, 100, (10, 15)),
        (100, 10, (7, 10)),
        (10, 12, (8, 12)),
        (1, 1, (1, 1)),
        (1, 100, (1, 1)),
        (2, 100, (2, 3)),
        (0, 100, (0, 0)),
        (100, 0, (0, 0)),
    ],
)
def test_question_quota_keeps_the_rarer_answer_whole(n_pos: int, n_neg: int, kept: tuple[int, int]) -> None:
    assert stage.question_quota(n_pos, n_neg, 0.4) == kept


def _balanced(
    tmp_path: Path, answers: dict[str, list[float]], quota: Quota, previous: dict[str, float] | None
) -> QuestionBalance:
    """One question's balance (`balance_questions`) from the sorted sample_u of its candidates per answer."""
    with Store(tmp_path / "balance.duckdb") as store:
        store.con.execute("CREATE OR REPLACE TABLE u (answer VARCHAR, sample_u DOUBLE)")
        store.con.executemany("INSERT INTO u VALUES (?, ?)", [(a, x) for a, us in answers.items() for x in us])
        [question] = balance_questions(
            store,
            f"SELECT 'q' AS question, {list(answers)} AS options, answer, sample_u FROM u",
            ("question",),
            {} if previous is None else {("q",): previous},
            quota,
            0.05,
        )
    return question.result


def _yes_no(target: float) -> Quota:
    return lambda key, counts: (stage.question_quota(*counts, target), (target, 1 - target))


def test_a_question_keeps_its_thresholds_while_the_share_stays_within_tolerance(tmp_path: Path) -> None:
    yes, no = [0.1, 0.5], [0.05, 0.2, 0.3, 0.6, 0.7, 0.9]
    before = {"yes": 1.0, "no": 0.6}
    fresh = _balanced(tmp_path, {"yes": yes, "no": no}, _yes_no(0.4), None)
    assert fresh == QuestionBalance((2, 3), (1.0, 0.6), "new")  # every yes, 3 no: the lowest u
    # one 'yes' study retired, one 'no' added below the threshold: (1, 4) is 0.2 'yes', three 'no' items off the
    # quota (1, 1): balanced again
    assert _balanced(
        tmp_path, {"yes": [0.1], "no": [0.05, 0.2, 0.25, 0.3, 0.7]}, _yes_no(0.4), before
    ) == QuestionBalance((1, 1), (1.0, 0.2), "rebalanced")
    # a 'no' below the threshold retired: (2, 2), 0.5, but one item from the quota (2, 3): kept, nothing flips
    assert _balanced(tmp_path, {"yes": yes, "no": [0.05, 0.3, 0.6, 0.7, 0.9]}, _yes_no(0.4), before) == QuestionBalance(
        (2, 2), (1.0, 0.6), "kept"
    )
    # a side gone keeps nothing, however balanced before
    assert _balanced(tmp_path, {"yes": [], "no": no}, _yes_no(0.4), before) == QuestionBalance(
        (0, 0), (0.0, 0.0), "rebalanced"
    )
    # equal item hashes at the quota: the threshold keeps those below it only
    assert _balanced(tmp_path, {"yes": [0.1, 0.5], "no": [0.05, 0.2, 0.2, 0.2, 0.7]}, _yes_no(0.4), None) == (
        QuestionBalance((2, 1), (1.0, 0.2), "new")
    )


def test_stored_questions_are_settled_as_their_candidates_would_be() -> None:
    rows = [("q", "yes", 1.0, 2, 2), ("q", "no", 0.6, 6, 3)]  # (key, answer, threshold, candidates, kept)
    assert stored_questions(rows, _yes_no(0.4), 0.05) == [
        Balanced(("q",), ("yes", "no"), (2, 6), QuestionBalance((2, 3), (1.0, 0.6), "kept"))
    ]
    assert stored_questions([rows[0], ("q", "no", 0.9, 6, 5)], _yes_no(0.4), 0.05) is None  # off its quota: counted
    assert stored_questions([rows[0], ("q", "no", None, 6, 3)], _yes_no(0.4), 0.05) is None  # no stored threshold


def test_a_choice_keeps_each_option_as_the_answer_as_often_as_the_rarest(tmp_path: Path) -> None:
    a, b, c = [0.2, 0.4, 0.9], [0.3, 0.8], [0.1, 0.5, 0.6, 0.7]
    assert _balanced(tmp_path, {"a": a, "b": b, "c": c}, even_quota, None) == QuestionBalance(
        (2, 2, 2), (0.9, 1.0, 0.6), "new"
    )
    # an option never the answer: the set of options keeps nothing
    assert _balanced(tmp_path, {"a": a, "b": [], "c": c}, even_quota, None) == QuestionBalance(
        (0, 0, 0), (0.0, 0.0, 0.0), "new"
    )
    # a new item answered by c below its threshold: (2, 2, 3), each within one of the quota (2, 2, 2): kept
    assert _balanced(
        tmp_path, {"a": a, "b": b, "c": [0.05, 0.1, 0.5, 0.6, 0.7]}, even_quota, {"a": 0.9, "b": 1.0, "c": 0.6}
    ) == QuestionBalance((2, 2, 3), (0.9, 1.0, 0.6), "kept")


def test_per_question_balance_keeps_the_quota_of_each_question(per_question: SimpleNamespace) -> None:
    store = per_question.store
    assert {row["mode"] for row in per_question.balance} == {"per_question"}
    assert all((row["keep_rate"], row["positive_keep_rate"]) == (1.0, 1.0) for row in per_question.balance)
    quotas = store.query_dicts("SELECT * FROM current_qa_question_balance")
    assert quotas and all(
        (q["n_positive_kept"], q["n_negative_kept"]) == stage.question_quota(q["n_positive"], q["n_negative"], 0.4)
        for q in quotas
    )
    assert all((q["missing"] is None) == bool(q["n_positive"] and q["n_negative"]) for q in quotas)
    # before de-duplication the rule keeps exactly the quota, the candidates with the lowest sample_u
    kept = store.query(
        "WITH ranked AS (SELECT *, row_number() OVER (PARTITION BY template_id, arguments, polarity "
        "ORDER BY sample_u, item_id) AS k FROM current_qa_candidates WHERE polarity IS NOT NULL) "
        "SELECT count(*) FROM ranked r SEMI JOIN current_qa_items i USING (item_id) JOIN current_qa_question_balance q "
        "USING (template_id, arguments) WHERE r.k > CASE WHEN r.polarity THEN q.n_positive_kept "
        "ELSE q.n_negative_kept END"
    )
    assert kept == [(0,)]
    # a question without one of the answers keeps none of its yes/no items
    assert store.query(
        "SELECT count(*) FROM current_qa_items i JOIN current_qa_question_balance q "
        "USING (template_id, arguments) WHERE q.missing IS NOT NULL AND i.polarity IS NOT NULL"
    ) == [(0,)]


def test_complementary_pairs_join_a_yes_and_a_no_of_one_question(per_question: SimpleNamespace) -> None:
    store = per_question.store
    pairs = store.query(
        "SELECT pair_id, count(*), count(*) FILTER (polarity), count(DISTINCT (template_id, arguments, "
        "coalesce(view_plane, ''), split)), count(DISTINCT study_id), any_value(template_id) "
        "FROM current_qa_items WHERE pair_id IS NOT NULL GROUP BY pair_id"
    )
    assert len(pairs) > 50
    assert {row[1:4] for row in pairs} == {(2, 1, 1)}
    assert {row[5] for row in pairs} <= {
        "devices_present",
        "finding_choice",
        "finding_hedged",
        "finding_presence",
        "finding_presence_closed_world",
        "finding_presence_sentence",
    }
    # every question, view and split of a paired template pairs min(yes, no) items
    unpaired = store.query(
        "SELECT count(*) FROM (SELECT template_id, arguments, view_plane, split, count(*) FILTER (polarity) AS y, "
        "count(*) FILTER (NOT polarity) AS n, count(pair_id) AS p FROM current_qa_items "
        "WHERE template_id = 'finding_presence' GROUP BY ALL) WHERE p <> 2 * least(y, n)"
    )
    assert unpaired == [(0,)]


def test_the_question_only_baseline_is_stored_with_the_selection(per_question: SimpleNamespace) -> None:
    from cxrvqa.core.prior import measure, stored_prior

    store = per_question.store
    stored = stored_prior(store)
    assert stored == sorted(
        measure(store, "current_qa_items"),
        key=lambda f: (f.answer_format, f.template_id is not None, f.template_id or "", f.key),
    )
    yes_no = {f.key: f for f in stored if f.template_id is None and f.answer_format == "yes_no"}
    assert set(yes_no) == {"question", "arguments"} and yes_no["question"].chance == 0.5
    assert yes_no["question"].accuracy <= 0.65


#: The yes/no candidates a rank quota (the n lowest sample_u of each side, `question_quota`) keeps: the
#: selection before stable balancing, to compare with.
RANK_QUOTA_SQL = """
SELECT study_id, item_id FROM current_qa_candidates WHERE polarity IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY template_id, arguments, polarity ORDER BY sample_u, item_id)
        <= quota_of(count(*) FILTER (polarity) OVER (PARTITION BY template_id, arguments),
                    count(*) FILTER (NOT polarity) OVER (PARTITION BY template_id, arguments), polarity)"""


def _rank_quota_kept(store: Store) -> set[tuple[str, str]]:
    store.con.create_function(
        "quota_of",
        lambda p, n, side: stage.question_quota(p, n, 0.4)[0 if side else 1],
        ["BIGINT", "BIGINT", "BOOLEAN"],
        "BIGINT",
    )
    try:
        return set(store.query(RANK_QUOTA_SQL))
    finally:
        store.con.remove_function("quota_of")


def _edited_copy(per_question: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """The per-question build copied, then edited: 30 of its 600 studies retired (as `build --prune` does) and
    10 new studies added, and its QA stage run again; what changed in the other studies."""
    from cxrvqa.store.retire import reconcile

    db = tmp_path / "cxrvqa.duckdb"
    per_question.store.con.execute("CHECKPOINT")  # the copy is the whole database (no pending WAL)
    shutil.copy(per_question.folder / "cxrvqa.duckdb", db)
    keys = "SELECT study_id, item_id, template_id, arguments FROM current_qa_items WHERE polarity IS NOT NULL"
    choices = (
        "SELECT study_id, item_id, template_id, list_sort(options)::VARCHAR FROM current_qa_items "
        "WHERE answer_format = 'multiple_choice'"
    )
    with Store(db) as store:
        before, rank_before, choices_before = set(store.query(keys)), _rank_quota_kept(store), set(store.query(choices))
        studies = [s for (s,) in store.query("SELECT study_id FROM current_reports ORDER BY study_id")]
        retired = set(studies[::20])
        reconcile(store, "run-2", "study", set(studies) - retired, "the test's input", prune=True)
        fill_store(store, 600, 10, n_patients=300, run_id="more")
        run_qa(store, tmp_path, "run-2")
        after, rank_after, choices_after = set(store.query(keys)), _rank_quota_kept(store), set(store.query(choices))
        choice_bases = dict(
            store.query(
                "SELECT basis, count(DISTINCT (template_id, options)) FROM current_qa_choice_balance GROUP BY ALL"
            )
        )
        rebalanced_choices = set(
            store.query(
                "SELECT DISTINCT template_id, options::VARCHAR "
                "FROM current_qa_choice_balance WHERE basis = 'rebalanced'"
            )
        )
        bases = dict(store.query("SELECT basis, count(*) FROM current_qa_question_balance GROUP BY ALL"))
        rebalanced = set(
            store.query("SELECT template_id, arguments FROM current_qa_question_balance WHERE basis = 'rebalanced'")
        )
        edited = retired | {s for (s,) in store.query("SELECT DISTINCT study_id FROM qa_items WHERE run_id = 'run-2'")}
    return SimpleNamespace(
        edited=edited,
        bases=bases,
        rebalanced=rebalanced,
        choice_bases=choice_bases,
        rebalanced_choices=rebalanced_choices,
        choices_flipped={row for row in choices_before ^ choices_after if row[0] not in edited},
        flipped={row for row in before ^ after if row[0] not in edited},
        rank_flipped={row for row in rank_before ^ rank_after if row[0] not in edited},
    )


#: The rows of the latest balance, without their run and time.
LATEST_BALANCE = {
    "qa_balance": "SELECT * EXCLUDE (run_id, created_at) FROM current_qa_balance ORDER BY ALL",
    "qa_question_balance": "SELECT * EXCLUDE (run_id, created_at) FROM current_qa_question_balance ORDER BY ALL",
    "qa_choice_balance": "SELECT * EXCLUDE (run_id, created_at) FROM current_qa_choice_balance ORDER BY ALL",
    "qa_current": "SELECT * FROM qa_current ORDER BY ALL",
}


def _balanced_again(per_question: SimpleNamespace, folder: Path, every_template: bool) -> dict[str, list]:
    """The per-question build copied, a user template added and its QA stage run again: the latest balance's rows
    and the current keys; ``every_template``: with no template's balance taken from its stored rows."""
    folder.mkdir()
    per_question.store.con.execute("CHECKPOINT")
    shutil.copy(per_question.folder / "cxrvqa.duckdb", folder / "cxrvqa.duckdb")
    user = folder / "templates"
    user.mkdir()
    for template in ("finding_presence", "finding_location_choice"):
        source = (Path(__file__).parents[2] / "prompts" / "questions" / f"{template}.yaml").read_text()
        (user / f"my_{template}.yaml").write_text(source.replace(f"id: {template}", f"id: my_{template}"))
    taken: list[list[str]] = []  # the templates balanced from their stored rows
    settled: list[int | None] = []  # the questions settled from stored rows (None: not every one was)
    unchanged, stored_questions = stage._unchanged_templates, stage.stored_questions

    def unchanged_templates(store: Store) -> list[str]:
        taken.append([] if every_template else unchanged(store))
        return taken[-1]

    def settled_questions(*args: object) -> list | None:
        questions = stored_questions(*args)
        settled.append(None if questions is None else len(questions))
        return questions

    with Store(folder / "cxrvqa.duckdb") as store, pytest.MonkeyPatch.context() as patch:
        patch.setattr(stage, "_unchanged_templates", unchanged_templates)
        patch.setattr(stage, "stored_questions", settled_questions)
        run_qa(store, folder, "run-2", template_dirs=[user])
        rows = {name: store.query(sql) for name, sql in LATEST_BALANCE.items()}
    return {"unchanged": taken, "settled": settled, **rows}


def test_a_rebalance_takes_the_unchanged_templates_from_their_stored_rows(
    per_question: SimpleNamespace, tmp_path: Path
) -> None:
    stored = _balanced_again(per_question, tmp_path / "stored", every_template=False)
    counted = _balanced_again(per_question, tmp_path / "counted", every_template=True)
    [same] = stored["unchanged"]  # every template with candidates before, none of the new ones
    assert same == sorted(t for (t,) in per_question.store.query("SELECT template_id FROM current_qa_balance"))
    assert len(same) == 33 and not {"my_finding_presence", "my_finding_location_choice"} & set(same)
    yes_no, choices = stored["settled"]  # their questions settled from the stored rows, not counted
    assert yes_no > 100 and choices > 100 and counted["settled"] == [0, 0]
    for name in LATEST_BALANCE:
        assert stored[name] == counted[name], name
    kinds = {row[0]: row for row in stored["qa_question_balance"]}
    assert {"finding_presence", "my_finding_presence"} <= set(kinds)  # yes/no questions of both kinds
    assert {"finding_location_choice", "my_finding_location_choice"} <= {row[0] for row in stored["qa_choice_balance"]}


def test_an_edit_to_some_studies_flips_items_of_others_only_where_a_share_leaves_its_tolerance(
    per_question: SimpleNamespace, tmp_path: Path
) -> None:
    edited = _edited_copy(per_question, tmp_path)
    assert len(edited.edited) == 40 and edited.bases == {"kept": 321, "rebalanced": 14}
    # every item of an unedited study that changed is one of the 14 questions balanced again
    assert {(t, a) for _, _, t, a in edited.flipped} == edited.rebalanced
    assert len(edited.flipped) == 46
    # a rank quota (the n lowest item hashes per side) flipped about five times as many, in most questions touched
    assert len(edited.rank_flipped) == 218
    # multiple choice alike, per template and set of options: 30 items of the 26 of 671 sets balanced again
    assert edited.choice_bases == {"kept": 640, "new": 5, "rebalanced": 26}
    rebalanced = {row for row in edited.choices_flipped if row[2:] in edited.rebalanced_choices}
    # ... or the item de-duplication hid behind one of those in its image (one question text per image)
    assert (len(rebalanced), len(edited.choices_flipped)) == (30, 34)
    assert {s for s, *_ in edited.choices_flipped} == {s for s, *_ in rebalanced}


def test_a_per_template_balance_keeps_its_rates_while_the_share_stays_within_tolerance(
    synthetic: SimpleNamespace, tmp_path: Path
) -> None:
    from cxrvqa.store.retire import reconcile

    db = tmp_path / "cxrvqa.duckdb"
    synthetic.store.con.execute("CHECKPOINT")
    shutil.copy(synthetic.folder / "cxrvqa.duckdb", db)
    keys = "SELECT study_id, item_id FROM current_qa_items WHERE polarity IS NOT NULL"
    with Store(db) as store:
        before = set(store.query(keys))
        studies = [s for (s,) in store.query("SELECT study_id FROM current_reports ORDER BY study_id")]
        retired = set(studies[::50])
        reconcile(store, "run-2", "study", set(studies) - retired, "the test's input", prune=True)
        rows = run_qa(store, tmp_path, "run-2", balance="per_template").balance
        after = set(store.query(keys))
    assert len(retired) == 20 and {row["basis"] for row in rows} == {"kept"}
    assert {row[0] for row in before ^ after} <= retired  # no item of another study flipped


def test_stage_counts(synthetic: SimpleNamespace) -> None:
    store = synthetic.store
    assert (synthetic.n_studies, synthetic.total, len(synthetic.pending)) == (1000, 1000, 1000)
    assert all(len(ids) == TEMPLATES for _, ids in synthetic.pending)
    n_items = store.query("SELECT count(*) FROM qa_items")[0][0]
    assert sum(c.n_input for c in synthetic.counts) == 1000
    assert sum(c.n_done for c in synthetic.counts) == n_items > 45_000  # ~50 items a study
    assert store.query("SELECT count(*), sum(n_items) FROM qa_done") == [(1000 * TEMPLATES, n_items)]
    # each study and template's done row (made in the worker) holds the template's version, its items and the run
    mismatched = store.query(
        "SELECT count(*) FROM qa_done d FULL JOIN (SELECT study_id, template_id, template_version, count(*) AS n "
        "FROM qa_items GROUP BY ALL) i USING (study_id, template_id, template_version) "
        "WHERE coalesce(d.n_items, 0) <> coalesce(i.n, 0) OR d.run_id <> 'run-1' OR d.created_at IS NULL"
    )
    assert mismatched == [(0,)]
    stale = store.query(
        "SELECT count(*) FROM qa_done d JOIN current_qa_templates t USING (template_id) "
        "WHERE d.template_version <> t.template_version"
    )
    assert stale == [(0,)]
    assert store.query("SELECT count(DISTINCT item_id) FROM qa_items")[0][0] == n_items
    # multi-part items have their parts, part 0 restating the answer
    assert (
        store.query(
            "SELECT count(*) FROM qa_items q WHERE answer_format = 'multi_part' AND NOT EXISTS "
            "(SELECT 1 FROM qa_answer_parts p WHERE p.item_id = q.item_id AND p.part_index = 0 "
            "AND p.kind = 'main' AND p.text = q.answer)"
        )[0][0]
        == 0
    )


def test_balance_rows(synthetic: SimpleNamespace) -> None:
    store = synthetic.store
    candidates = {
        row[0]: row[1:]
        for row in store.query(
            "SELECT template_id, count(*) FILTER (polarity), count(*) FILTER (NOT polarity) "
            "FROM current_qa_candidates GROUP BY ALL"
        )
    }
    # every template has candidates but the four that need boxes (the synthetic images have none)
    assert len(synthetic.balance) == len(candidates) == TEMPLATES - 4
    stored = store.query_dicts("SELECT * EXCLUDE (created_at) FROM qa_balance ORDER BY template_id")
    assert stored == [{k: v for k, v in row.items() if k != "created_at"} for row in synthetic.balance]
    close_to_target = 0
    for row in synthetic.balance:
        n_pos, n_neg = candidates[row["template_id"]]
        assert (row["n_positive"], row["n_negative"], row["target_share"]) == (n_pos, n_neg, 0.4)
        keep_neg = keep_pos = 1.0
        if n_pos and n_neg:
            keep_neg, keep_pos = min(1.0, n_pos * 0.6 / (0.4 * n_neg)), min(1.0, n_neg * 0.4 / (0.6 * n_pos))
        assert (row["keep_rate"], row["positive_keep_rate"]) == (pytest.approx(keep_neg), pytest.approx(keep_pos))
        assert max(row["keep_rate"], row["positive_keep_rate"]) == 1.0  # only the side in excess is sampled
        kept_pos, kept_neg = store.query(
            "SELECT count(*) FILTER (polarity AND sample_u < ?), count(*) FILTER (NOT polarity AND sample_u < ?) "
            "FROM current_qa_candidates WHERE template_id = ?",
            [row["positive_keep_rate"], row["keep_rate"], row["template_id"]],
        )[0]
        assert (row["n_positive_kept"], row["n_negative_kept"]) == (kept_pos, kept_neg)
        total = kept_pos + kept_neg
        assert row["achieved_share"] == (kept_pos / total if total else None)
        if n_pos and n_neg and min(kept_pos, kept_neg) >= 100:
            assert abs(row["achieved_share"] - 0.4) <= 0.05, row
            close_to_target += 1
        if not (n_pos and n_neg):
            assert (kept_pos, kept_neg) == (n_pos, n_neg)  # one side only: everything kept
    # templates with >= 100 of each side in the synthetic corpus (6 since a closed-world "no" needs a normal
    # statement: fewer region and category templates have many negatives)
    assert close_to_target >= 6


def test_current_items_are_balanced_and_deduplicated(synthetic: SimpleNamespace) -> None:
    store = synthetic.store
    assert (
        store.query(
            "SELECT count(*) FROM current_qa_items c JOIN current_qa_balance b USING (template_id) "
            "WHERE (NOT c.polarity AND c.sample_u >= b.keep_rate) "
            "OR (c.polarity AND c.sample_u >= b.positive_keep_rate)"
        )[0][0]
        == 0
    )
    assert (
        store.query(
            "SELECT count(*) FROM (SELECT coalesce(image_id, 'study:' || study_id), lower(question), "
            "answer_format = 'multiple_choice' FROM current_qa_items GROUP BY ALL HAVING count(*) > 1)"
        )[0][0]
        == 0
    )
    # every kept candidate missing from the dataset lost to a same-question item of an earlier template id
    lost = store.query(
        "WITH cur AS MATERIALIZED (SELECT item_id, coalesce(image_id, 'study:' || study_id) AS k, "
        "lower(question) || (answer_format = 'multiple_choice') AS q, template_id FROM current_qa_items), "
        "kept AS MATERIALIZED (SELECT c.item_id, coalesce(c.image_id, 'study:' || c.study_id) AS k, "
        "lower(c.question) || (c.answer_format = 'multiple_choice') AS q, c.template_id FROM current_qa_candidates c "
        "JOIN current_qa_balance b USING (template_id) WHERE c.polarity IS NULL "
        "OR c.sample_u < CASE WHEN c.polarity THEN b.positive_keep_rate ELSE b.keep_rate END), "
        "missing AS (SELECT * FROM kept ANTI JOIN cur USING (item_id)) "
        "SELECT m.item_id FROM missing m ANTI JOIN (SELECT m2.item_id FROM missing m2 JOIN cur ON cur.k = m2.k "
        "AND cur.q = m2.q AND cur.template_id <= m2.template_id) w USING (item_id)"
    )
    assert lost == []
    n_current = store.query("SELECT count(*) FROM current_qa_items")[0][0]
    assert 0.5 * synthetic.n_images * 10 < n_current < store.query("SELECT count(*) FROM qa_items")[0][0]


def test_the_rule_keeps_what_one_window_over_every_balanced_candidate_keeps(synthetic: SimpleNamespace) -> None:
    """Migration 0029 windows only the candidates whose key's hash repeats: the same keys as migration 0026's rule,
    one window over every balanced candidate (read from its file, as a temporary macro), for every template and for
    some; the synthetic build has repeated keys, so both parts of the new rule run."""
    migrations = resource("store", "migrations")
    text = (migrations / "0026_selection_per_template.sql").read_text()
    window_rule = text[text.index("CREATE OR REPLACE MACRO qa_rule") : text.index(";", text.index("QUALIFY"))]
    balanced_rule = window_rule[: window_rule.index("QUALIFY")]
    store = synthetic.store
    try:
        store.con.execute(window_rule.replace("CREATE OR REPLACE MACRO qa_rule(", "CREATE TEMP MACRO qa_rule_window("))
        store.con.execute(
            balanced_rule.replace("CREATE OR REPLACE MACRO qa_rule(", "CREATE TEMP MACRO qa_rule_balanced(")
        )
        templates = [t for (t,) in store.query("SELECT DISTINCT template_id FROM current_qa_candidates ORDER BY ALL")]
        keys = "SELECT study_id, item_id, template_version, input_hash FROM {}(?::VARCHAR[]) ORDER BY ALL"
        for chosen in (None, templates[: len(templates) // 2]):
            kept = store.query(keys.format("qa_rule"), [chosen])
            assert kept == store.query(keys.format("qa_rule_window"), [chosen]) and kept
        [(balanced, kept)] = store.query(
            "SELECT (SELECT count(*) FROM qa_rule_balanced(NULL)), count(*) FROM qa_current_rule"
        )
        assert balanced > kept  # keys repeat: the window part of the rule ran
    finally:
        store.con.execute("DROP MACRO TABLE IF EXISTS temp.qa_rule_window")
        store.con.execute("DROP MACRO TABLE IF EXISTS temp.qa_rule_balanced")


def test_splits_are_patient_disjoint(synthetic: SimpleNamespace) -> None:
    store = synthetic.store
    assert store.query("SELECT patient_id FROM qa_items GROUP BY patient_id HAVING count(DISTINCT split) > 1") == []
    n_patients = store.query("SELECT count(DISTINCT patient_id) FROM qa_items")[0][0]
    assert n_patients > 300
    shares = dict(
        store.query("SELECT split, count(DISTINCT patient_id) / ? FROM qa_items GROUP BY split", [n_patients])
    )
    assert set(shares) == {"train", "val", "test"}
    assert abs(shares["train"] - 0.8) < 0.07 and abs(shares["val"] - 0.1) < 0.05 and abs(shares["test"] - 0.1) < 0.05


def test_rerun_generates_nothing(synthetic: SimpleNamespace) -> None:
    store = synthetic.store
    before = store.query("SELECT count(*) FROM qa_items")[0][0]
    config = load_config(None, {"out_dir": synthetic.folder, "qa": {"workers": 1}})
    context = stage.prepare(config)
    stage.record_inputs(store, "run-2", context)
    assert stage.pending_work(store, context) == (1000, [])
    assert store.query("SELECT count(*) FROM qa_items")[0][0] == before
    assert store.query("SELECT count(*) FROM qa_inputs WHERE run_id = 'run-2'")[0][0] == 0


def test_rerun_with_another_seed_regenerates(synthetic: SimpleNamespace) -> None:
    config = load_config(None, {"out_dir": synthetic.folder, "seed": 1, "qa": {"workers": 1}})
    context = stage.prepare(config)
    stage.record_inputs(synthetic.store, "run-seed-1", context)
    total, pending = stage.pending_work(synthetic.store, context)
    assert len(pending) == total == 1000


def test_multiple_choice_items_are_not_dropped_as_duplicates_of_other_formats(synthetic: SimpleNamespace) -> None:
    assert (
        synthetic.store.query(
            "WITH cur AS MATERIALIZED (SELECT item_id, image_id, lower(question) AS q, answer_format "
            "FROM current_qa_items), "
            "mcq AS (SELECT item_id, image_id, lower(question) AS q FROM current_qa_candidates "
            "WHERE answer_format = 'multiple_choice') "
            "SELECT count(*) FROM (SELECT * FROM mcq ANTI JOIN cur USING (item_id)) m "
            "JOIN cur ON cur.image_id = m.image_id AND cur.q = m.q AND cur.answer_format <> 'multiple_choice'"
        )[0][0]
        == 0
    )


def test_incremental_rerun_redoes_only_changed_studies_and_new_templates(tmp_path: Path) -> None:
    with Store(tmp_path / "cxrvqa.duckdb") as store:
        fill_store(store, 0, 40)
        first = run_qa(store, tmp_path, "run-1")
        assert len(first.pending) == 40
        # a re-extraction (new extractor version, so new graph ids) that gives every study the same graph
        store.con.execute(
            "INSERT INTO scene_graphs SELECT * REPLACE ('g1-' || graph_id AS graph_id, "
            "created_at + INTERVAL 1 SECOND AS created_at, 'run-x' AS run_id) FROM scene_graphs"
        )
        unchanged = run_qa(store, tmp_path, "run-1b")
        assert (
            unchanged.pending == []
            and store.query("SELECT count(*) FROM current_qa_candidates WHERE graph_id LIKE 'g1-%'")[0][0] == 0
        )
        # three studies get a changed scene graph
        store.con.execute(
            "INSERT INTO scene_graphs SELECT * REPLACE ('g2-' || graph_id AS graph_id, "
            "created_at + INTERVAL 2 SECOND AS created_at, 'run-x' AS run_id, "
            'json_merge_patch(graph, \'{"indication": "Changed."}\')::VARCHAR AS graph) '
            "FROM scene_graphs WHERE study_id IN ('s0000003', 's0000007', 's0000011') "
            "AND graph_id LIKE 'g1-%'"
        )
        second = run_qa(store, tmp_path, "run-2")
        assert [(study, len(ids)) for study, ids in second.pending] == [
            ("s0000003", TEMPLATES),
            ("s0000007", TEMPLATES),
            ("s0000011", TEMPLATES),
        ]
        assert store.query(
            "SELECT DISTINCT graph_id[:3] FROM current_qa_candidates WHERE study_id IN "
            "('s0000003', 's0000007', 's0000011')"
        ) == [("g2-",)]
        assert store.query(
            "SELECT count(DISTINCT study_id), count(*) FILTER (graph_id LIKE 'g1-%') FROM current_qa_candidates"
        )[0] == (40, 0)  # the others keep their first items
        # a user template: only it is generated, for every study
        user = tmp_path / "templates"
        user.mkdir()
        source = (Path(__file__).parents[2] / "prompts" / "questions" / "finding_presence.yaml").read_text()
        (user / "my_presence.yaml").write_text(source.replace("id: finding_presence", "id: my_presence"))
        third = run_qa(store, tmp_path, "run-3", template_dirs=[user])
        assert len(third.pending) == 40 and {tuple(ids) for _, ids in third.pending} == {("my_presence",)}
        assert (
            store.query("SELECT count(*) FROM qa_items WHERE run_id = 'run-3' AND template_id <> 'my_presence'")[0][0]
            == 0
        )
        assert store.query("SELECT count(*) FROM current_qa_candidates WHERE template_id = 'my_presence'")[0][0] > 0
        # two studies changed and a second user template at once: no template is done for every current study
        # (the changed studies' done rows are of their old inputs), so none is left out before the pairing
        store.con.execute(
            "INSERT INTO scene_graphs SELECT * REPLACE ('g3-' || graph_id AS graph_id, "
            "created_at + INTERVAL 3 SECOND AS created_at, 'run-x' AS run_id, "
            'json_merge_patch(graph, \'{"indication": "Changed again."}\')::VARCHAR AS graph) '
            "FROM current_scene_graphs WHERE study_id IN ('s0000005', 's0000007')"
        )
        (user / "my_other.yaml").write_text(source.replace("id: finding_presence", "id: my_other"))
        fourth = run_qa(store, tmp_path, "run-4", template_dirs=[user])
        assert {study: len(ids) for study, ids in fourth.pending if len(ids) > 1} == {
            "s0000005": TEMPLATES + 2,
            "s0000007": TEMPLATES + 2,
        }
        assert len(fourth.pending) == 40 and {
            tuple(ids) for study, ids in fourth.pending if study not in ("s0000005", "s0000007")
        } == {("my_other",)}


def test_input_hashes_are_made_again_only_when_a_table_they_read_changed(tmp_path: Path, monkeypatch) -> None:
    """`record_inputs` hashes the studies' inputs where the tables they read changed since its last record
    (`qa_input_states`): not on a rerun, again after a graph restored in place (a new `created_at`, the same row
    count), after a new graph, which gets its study a new input row, and after an edit of the query."""
    recorded: list[str] = []
    record = stage._record_study_inputs
    monkeypatch.setattr(
        stage, "_record_study_inputs", lambda store, run_id, *a: recorded.append(run_id) or record(store, run_id, *a)
    )
    inputs = "SELECT study_id, input_hash, graph_id, run_id FROM qa_inputs ORDER BY ALL"
    with Store(tmp_path / "cxrvqa.duckdb") as store:
        fill_store(store, 0, 5)
        run_qa(store, tmp_path, "run-1")
        first = store.query(inputs)
        run_qa(store, tmp_path, "run-2")
        assert recorded == ["run-1"] and store.query(inputs) == first
        store.con.execute("UPDATE scene_graphs SET created_at = now() WHERE study_id = 's0000001'")
        run_qa(store, tmp_path, "run-3")
        assert recorded == ["run-1", "run-3"] and store.query(inputs) == first  # the same graphs: the same hashes
        store.con.execute(
            "INSERT INTO scene_graphs SELECT * REPLACE ('g2-' || graph_id AS graph_id, now() AS created_at, "
            'json_merge_patch(graph, \'{"indication": "Changed."}\')::VARCHAR AS graph) '
            "FROM scene_graphs WHERE study_id = 's0000002'"
        )
        run_qa(store, tmp_path, "run-4")
        assert recorded == ["run-1", "run-3", "run-4"]
        assert [row[0] for row in store.query(inputs) if row[3] == "run-4"] == ["s0000002"]
        monkeypatch.setattr(stage, "STUDY_INPUTS_SQL", stage.STUDY_INPUTS_SQL + "\n")  # the query edited
        run_qa(store, tmp_path, "run-5")
        assert recorded == ["run-1", "run-3", "run-4", "run-5"]
        assert store.query("SELECT run_id FROM qa_input_states ORDER BY created_at") == [
            ("run-1",),
            ("run-3",),
            ("run-4",),
            ("run-5",),
        ]


def test_current_keys_are_the_rule_stored_again_only_when_what_it_reads_changed(tmp_path: Path) -> None:
    rule = "SELECT study_id, item_id, template_version, input_hash FROM qa_current_rule ORDER BY ALL"
    with Store(tmp_path / "cxrvqa.duckdb") as store:
        fill_store(store, 0, 40)
        run_qa(store, tmp_path, "run-1")
        first = store.query("SELECT * EXCLUDE (pair_id) FROM qa_current ORDER BY ALL")
        assert first == store.query(rule) and len(first) > 500  # ~800 under the per-question balance
        assert store.query("SELECT count(*) FROM current_qa_items")[0][0] == len(first)
        source = store.query("SELECT * FROM qa_current_source")
        run_qa(store, tmp_path, "run-2")  # nothing changed: the keys are not selected again
        assert store.query("SELECT * FROM qa_current_source") == source
        store.con.execute(
            "INSERT INTO scene_graphs SELECT * REPLACE ('g2-' || graph_id AS graph_id, "
            "created_at + INTERVAL 2 SECOND AS created_at, 'run-x' AS run_id, "
            'json_merge_patch(graph, \'{"indication": "Changed."}\')::VARCHAR AS graph) '
            "FROM scene_graphs WHERE study_id = 's0000003'"
        )
        run_qa(store, tmp_path, "run-3")
        assert store.query("SELECT * FROM qa_current_source") != source
        now = store.query("SELECT * EXCLUDE (pair_id) FROM qa_current ORDER BY ALL")
        assert now == store.query(rule)
        changed = set(first) ^ set(now)
        assert changed and {row[0] for row in changed} == {"s0000003"}


def _user_template(
    folder: Path, template_id: str, version: int, reword: bool, source: str = "finding_presence"
) -> None:
    """A built-in template (``source``) under another id (its questions reworded, or the same: then they share its
    items' de-duplication keys), at ``version`` (from 2 on, one more question variant)."""
    data = yaml.safe_load((Path(__file__).parents[2] / "prompts" / "questions" / f"{source}.yaml").read_text())
    prefix = "According to this radiograph, " if reword else ""
    data["id"], data["version"] = template_id, version
    data["variants"] = [prefix + v[:1].lower() + v[1:] if reword else v for v in data["variants"]]
    for example in data.get("examples", []):
        if reword and "question" in example:
            example["question"] = prefix + example["question"][:1].lower() + example["question"][1:]
    if version > 1:
        data["variants"].append(f"Looking at this study: {data['variants'][0]}")
    folder.mkdir(exist_ok=True)
    (folder / f"{template_id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_template_edit_selects_its_keys_again_as_a_whole_selection_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: after an edit of one template only its keys are selected again (the rule and pairs over its
    candidates alone; the evaluation profile over its items alone), and they are what a selection over every
    template, and a build from scratch, store; a template whose questions are another's (they may share
    de-duplication keys) has every key selected again."""
    keys, prior = "SELECT * FROM qa_current ORDER BY ALL", "SELECT * EXCLUDE (run_id, created_at) FROM qa_prior"
    # the evaluation profile's thresholds (their basis aside: kept in the rebuild, new from scratch)
    profile = "SELECT * EXCLUDE (run_id, created_at, basis) FROM current_qa_eval_balance ORDER BY ALL"
    whole = f"SELECT * FROM ({stage.CURRENT_SQL}) ORDER BY ALL"
    user = tmp_path / "templates"
    with Store(tmp_path / "cxrvqa.duckdb") as store:
        fill_store(store, 0, 40)
        _user_template(user, "my_presence", 1, reword=True)
        run_qa(store, tmp_path, "run-1", template_dirs=[user])
        shared: list[tuple[list[str], bool]] = []
        query = store.query

        def spy(sql: str, params: list | None = None) -> list[tuple]:
            result = query(sql, params)
            if sql == stage.SHARED_QUESTIONS_SQL:
                shared.append((params[0], result[0][0]))
            return result

        monkeypatch.setattr(store, "query", spy)
        _user_template(user, "my_presence", 2, reword=True)
        run_qa(store, tmp_path, "run-2", template_dirs=[user])
        assert shared == [(["my_presence"], False)]
        edited = store.query(keys)
        assert edited == store.query(whole, [None]) and any(pair for *_, pair in edited)
        edited_prior = store.query(prior + " WHERE run_id = 'run-2'")
        edited_eval = store.query(profile)
        presence = "SELECT count(*) FROM current_qa_items WHERE template_id = 'finding_presence'"
        before = store.query(presence)[0][0]
        _user_template(user, "a_presence", 1, reword=False)  # sorts first: its items replace finding_presence's
        run_qa(store, tmp_path, "run-3", template_dirs=[user])
        assert shared[1:] == [(["a_presence"], True)] and store.query(keys) == store.query(whole, [None])
        assert store.query(presence)[0][0] < before
    (user / "a_presence.yaml").unlink()
    with Store(tmp_path / "scratch.duckdb") as store:
        fill_store(store, 0, 40)
        run_qa(store, tmp_path, "run-1", template_dirs=[user])
        assert store.query(keys) == edited and store.query(prior) == edited_prior
        assert store.query(profile) == edited_eval


def _spaced(folder: Path, template_id: str) -> None:
    """The user template's questions with a space before the question mark: texts no other template has, that
    the baseline reads as finding_presence's (normalised)."""
    path = folder / f"{template_id}.yaml"
    data = yaml.safe_load(path.read_text())
    data["variants"] = [v.replace("?", " ?") for v in data["variants"]]
    for example in data.get("examples", []):
        if "question" in example:
            example["question"] = example["question"].replace("?", " ?")
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize("spaced", [False, True])
def test_a_template_edit_measures_the_baseline_of_its_own_items_unless_another_template_asks_its_questions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spaced: bool
) -> None:
    """Issue 19: after an edit of one template whose keys alone are selected again, the question-only baseline is
    measured on its items only and the other templates' stored figures are kept; where its questions, normalised,
    are another template's (a majority answer mixes both), on every item. The figures are a build from scratch's
    either way, to the bit."""
    prior = "SELECT * EXCLUDE (run_id, created_at) FROM current_qa_prior ORDER BY ALL"
    user = tmp_path / "templates"
    measured: list[tuple[str, list]] = []
    shared: list[bool] = []
    real_measure, real_query = stage.measure, Store.query

    def spy_measure(store: Store, source: str, params: list | tuple = ()) -> list:
        measured.append((source, list(params)))
        return real_measure(store, source, params)

    def spy_query(self: Store, sql: str, params: list | None = None) -> list[tuple]:
        result = real_query(self, sql, params)
        if sql == stage.SHARED_QUESTIONS_SQL:
            shared.append(result[0][0])
        return result

    monkeypatch.setattr(stage, "measure", spy_measure)
    monkeypatch.setattr(Store, "query", spy_query)
    for version in (1, 2):
        _user_template(user, "my_presence", version, reword=not spaced)
        if spaced:
            _spaced(user, "my_presence")
        with Store(tmp_path / f"v{version}.duckdb") as scratch:
            fill_store(scratch, 0, 40)
            run_qa(scratch, tmp_path, "scratch", template_dirs=[user])
            expected = scratch.query(prior)
        with Store(tmp_path / "cxrvqa.duckdb") as store:
            if version == 1:
                fill_store(store, 0, 40)
            measured.clear()
            run_qa(store, tmp_path, f"run-{version}", template_dirs=[user])
            assert store.query(prior) == expected
            [(edited,)] = store.query(
                "SELECT template_version FROM current_qa_templates WHERE template_id = 'my_presence'"
            )
    assert shared[-1] is False  # the texts differ: the keys of my_presence alone were selected again
    whole = [("current_qa_items", [])]
    assert measured == (whole if spaced else [(stage.CHANGED_ITEMS_SQL, [["my_presence"], [edited]])])


@pytest.mark.parametrize("stored", ["by other code", "none"])
def test_a_template_edit_measures_the_whole_baseline_unless_the_stored_one_is_the_last_selections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stored: str
) -> None:
    """The other templates' stored figures are kept only where the last selection stored them, with this code: after
    an edit of cxrvqa.core.prior, or a last selection that stored no figures (the view then shows an earlier run's),
    the baseline of every item is measured."""
    user = tmp_path / "templates"
    measured: list[str] = []
    real_measure = stage.measure

    def spy_measure(store: Store, source: str, params: list | tuple = ()) -> list:
        measured.append(source)
        return real_measure(store, source, params)

    monkeypatch.setattr(stage, "measure", spy_measure)
    with Store(tmp_path / "cxrvqa.duckdb") as store:
        fill_store(store, 0, 40)
        _user_template(user, "my_presence", 1, reword=True)
        run_qa(store, tmp_path, "run-1", template_dirs=[user])
        if stored == "none":
            store.con.execute("DELETE FROM qa_prior")
        else:
            monkeypatch.setattr(stage, "baseline_code_hash", lambda: "another version")
        measured.clear()
        _user_template(user, "my_presence", 2, reword=True)
        run_qa(store, tmp_path, "run-2", template_dirs=[user])
        assert measured == ["current_qa_items"]
        assert store.query("SELECT DISTINCT run_id FROM current_qa_prior") == [("run-2",)]


def test_another_version_of_the_baseline_measures_the_stored_figures_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build made before an edit of cxrvqa.core.prior does not keep showing the figures of the earlier code: the
    next QA stage selects the same keys again and stores figures measured by the new code."""
    with Store(tmp_path / "cxrvqa.duckdb") as store:
        fill_store(store, 0, 40)
        run_qa(store, tmp_path, "run-1")
        keys = store.query("SELECT * FROM qa_current ORDER BY ALL")
        run_qa(store, tmp_path, "run-2")
        assert store.query("SELECT DISTINCT run_id FROM qa_prior") == [("run-1",)]
        monkeypatch.setattr(stage, "baseline_code_hash", lambda: "another version")
        run_qa(store, tmp_path, "run-3")
        assert store.query("SELECT DISTINCT run_id FROM current_qa_prior") == [("run-3",)]
        assert store.query("SELECT * FROM qa_current ORDER BY ALL") == keys


def test_another_seed_changes_variants_and_splits(tmp_path: Path) -> None:
    found = []
    for seed in (0, 1):
        with Store(tmp_path / f"seed{seed}" / "cxrvqa.duckdb") as store:
            fill_store(store, 0, 150, n_patients=100)
            run_qa(store, tmp_path / f"seed{seed}", "run", seed=seed)
            found.append(
                {
                    (r[0], r[1], r[2]): r[3:]
                    for r in store.query(
                        "SELECT template_id, image_id, arguments, question, answer, split, patient_id FROM qa_items"
                    )
                }
            )
    zero, one = found
    unsampled = {
        t.id
        for t, _ in stage.prepare(load_config(None, {"out_dir": tmp_path})).templates
        if t.weight == 1 and t.max_per_image is None and t.answer_format != "multiple_choice"
    }
    shared = set(zero) & set(one)
    assert {k for k in zero if k[0] in unsampled} == {k for k in one if k[0] in unsampled} <= shared
    assert len(shared) > 0.8 * len(zero)
    assert sum(zero[k][0] != one[k][0] for k in shared) > 0.2 * len(shared)  # variants
    assert all(zero[k][1] == one[k][1] for k in shared if k[0] == "finding_presence")  # same answers
    patients = {zero[k][3]: (zero[k][2], one[k][2]) for k in shared}
    assert 0.1 < sum(a != b for a, b in patients.values()) / len(patients) < 0.6  # splits


# -- the demo through the real flow ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from cxrvqa.cli import _demo_inputs
    from flows.build import build_dataset

    root = tmp_path_factory.mktemp("qa-demo")

    def config(out: Path):
        return load_config(
            None, {**_demo_inputs(), "out_dir": out, "qa": {**_demo_inputs().get("qa", {}), "workers": 2}}
        )

    first = build_dataset(config(root / "a"))
    snapshots = []
    for out in ("a", "b"):
        if out == "b":
            second = build_dataset(config(root / "b"))
        with Store(root / out / "cxrvqa.duckdb", read_only=True) as store:
            snapshots.append(
                (
                    store.query(SNAPSHOT),
                    store.query("SELECT * FROM qa_answer_parts ORDER BY item_id, part_index"),
                    store.query("SELECT * EXCLUDE (run_id, created_at) FROM qa_balance ORDER BY template_id"),
                )
            )
    rerun = build_dataset(config(root / "a"))
    return SimpleNamespace(root=root, first=first, second=second, rerun=rerun, snapshots=snapshots)


@pytest.mark.flow
def test_demo_build_produces_every_answer_format(demo: SimpleNamespace) -> None:
    n_items = len(demo.snapshots[0][0])
    assert demo.first["stages"]["qa"] == {"n_input": 6, "n_skipped": 0, "n_done": n_items, "n_rejected": 0}
    with Store(demo.root / "a" / "cxrvqa.duckdb", read_only=True) as store:
        formats = dict(store.query("SELECT answer_format, count(*) FROM current_qa_items GROUP BY ALL"))
        assert set(formats) == {"yes_no", "short", "full_sentence", "multi_part", "multiple_choice", "box"}
        assert store.query("SELECT count(DISTINCT study_id) FROM current_qa_items")[0][0] == 6
        assert store.query("SELECT patient_id FROM qa_items GROUP BY ALL HAVING count(DISTINCT split) > 1") == []


@pytest.mark.flow
def test_demo_builds_are_identical(demo: SimpleNamespace) -> None:
    assert demo.first["run_id"] != demo.second["run_id"]
    assert demo.snapshots[0] == demo.snapshots[1]
    assert len(demo.snapshots[0][0]) > 200


@pytest.mark.flow
def test_demo_rerun_skips_everything(demo: SimpleNamespace) -> None:
    assert demo.rerun["stages"]["qa"] == {"n_input": 6, "n_skipped": 6, "n_done": 0, "n_rejected": 0}
    with Store(demo.root / "a" / "cxrvqa.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM qa_items WHERE run_id = ?", [demo.rerun["run_id"]]) == [(0,)]
        assert store.query(SNAPSHOT) == demo.snapshots[0][0]


@pytest.mark.flow
def test_demo_boxes_are_the_rescaled_current_boxes(demo: SimpleNamespace, tmp_path: Path) -> None:
    from cxrvqa.core.resources import resource
    from cxrvqa.imaging.boxes import import_boxes

    db = tmp_path / "cxrvqa.duckdb"
    shutil.copy(demo.root / "a" / "cxrvqa.duckdb", db)
    with Store(db) as store:
        # imported after the images stage (a no-op when the demo build imported them already), then QA again
        import_boxes(store, Path(str(resource("demo") / "boxes.csv")), fmt="auto", run_id="run-boxes")
        run_qa(store, tmp_path, "run-boxes")
        boxes = {
            (image, kind, label): []
            for image, kind, label in store.query("SELECT DISTINCT image_id, kind, label FROM current_boxes")
        }
        for image, kind, label, *box in store.query(
            "SELECT image_id, kind, label, x_min, y_min, x_max, y_max FROM current_boxes ORDER BY box_id"
        ):
            boxes[(image, kind, label)].append(box)
        items = store.query(
            "SELECT template_id, image_id, answer, findings, boxes FROM current_qa_items "
            "WHERE len(boxes) > 0 ORDER BY template_id, image_id, answer"
        )
        assert {t for t, *_ in items} == {
            "finding_box",
            "finding_box_count",
            "cardiothoracic_ratio",
            "cardiothoracic_ratio_enlarged",
        }
        for template_id, image, _, findings, item_boxes in items:
            if template_id.startswith("finding_box"):
                expected = sorted(boxes[(image, "finding", findings[0])])
            else:
                expected = [boxes[(image, "region", "heart")][0], boxes[(image, "region", "chest")][0]]
            got = [[b["x_min"], b["y_min"], b["x_max"], b["y_max"]] for b in item_boxes]
            if template_id.startswith("finding_box"):
                got = sorted(got)
            assert got == [pytest.approx(box, abs=0.05) for box in expected], (template_id, image)
        # the demo's pneumothorax box (150, 80, 400, 300 on the 1024 px source) on its 256 px PNG
        assert ("finding_box", "[38, 20, 100, 75]") in {(t, a) for t, _, a, *_ in items}
        ratios = {a for t, _, a, *_ in items if t == "cardiothoracic_ratio"}
        assert ratios == {"0.39", "0.56"}  # demo-s1 "heart size is normal", demo-s3 mild cardiomegaly
        assert (
            json.loads(
                store.query(
                    "SELECT arguments FROM current_qa_items WHERE template_id = 'cardiothoracic_ratio' LIMIT 1"
                )[0][0]
            )
            == {}
        )


def test_batches_take_more_studies_where_they_need_few_templates(tmp_path: Path) -> None:
    context = stage.prepare(load_config(None, {"out_dir": tmp_path}))
    every = [t.id for t, _ in context.templates]
    studies = [f"s{i:02d}" for i in range(30)]
    full_build = [(s, every) for s in studies]
    assert [len(b) for b in stage.batches(context)(full_build, 4)] == [4] * 7 + [2]
    template_rebuild = [(s, every[:1]) for s in studies]  # up to 5 x 4 studies a batch
    assert [len(b) for b in stage.batches(context)(template_rebuild, 4)] == [20, 10]
    assert [study for batch in stage.batches(context)(template_rebuild, 4) for study, _ in batch] == studies


@pytest.mark.flow
@pytest.mark.parametrize(
    "source", ["finding_presence", "finding_describe", "finding_presence_sentence", "finding_choice"]
)
def test_a_reworded_template_makes_its_earlier_items_asked_anew_as_generating_them_would(
    demo: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Issue 19: a template only reworded (one more question variant) has its items made from its earlier version's
    items without a study view (their questions and answer digests made again): the rows, parts and done rows a
    generation makes; an earlier item edited after it was made keeps its edit but no answer digest (its validation
    makes it again); a study whose earlier items are not all known (no done row) is generated beside them; an earlier
    version made by a run of other code or settings gives nothing."""
    out, user = tmp_path / "copy", tmp_path / "templates"
    shutil.copytree(demo.root / "a", out)
    viewed: list[str] = []
    view = stage.study_view
    monkeypatch.setattr(stage, "study_view", lambda graph, *a: viewed.append(graph["study_id"]) or view(graph, *a))
    _user_template(user, "mine", 1, reword=True, source=source)
    _qa_build(out, user)
    with Store(out / "cxrvqa.duckdb") as store:
        [(edited,)] = store.query("SELECT min(item_id) FROM qa_items WHERE template_id = 'mine'")
        store.con.execute("UPDATE qa_items SET answer = answer || ' (edited)' WHERE item_id = ?", [edited])
        store.con.execute("DELETE FROM qa_done WHERE template_id = 'mine' AND study_id = 'demo-s2'")  # generated
    shutil.copy(out / "cxrvqa.duckdb", tmp_path / "before.duckdb")
    _user_template(user, "mine", 2, reword=True, source=source)
    viewed.clear()
    reworded = _qa_build(out, user)
    assert viewed == ["demo-s2"] and len(reworded["items"]) > 3 and len(reworded["done"]) == 6
    from cxrvqa.cli import _demo_inputs

    qa = {**_demo_inputs()["qa"], "template_dirs": [user]}
    settings = stage.prepare(load_config(None, {**_demo_inputs(), "out_dir": out, "qa": qa})).settings
    with Store(out / "cxrvqa.duckdb", read_only=True) as store, monkeypatch.context() as edited_vocabulary:
        assert [template for template, *_ in stage.reworded(store, settings)] == ["mine"]
        edited_vocabulary.setattr(stage, "generation_environment", lambda *a: {"vocab": "edited"})
        assert stage.reworded(store, settings) == ()  # made under another vocabulary, seed or split order: no rewording
    shutil.copy(tmp_path / "before.duckdb", out / "cxrvqa.duckdb")
    monkeypatch.setattr(stage, "same_runs", lambda store, config: ("a-run-of-other-code",))
    viewed.clear()
    generated = _qa_build(out, user)
    assert sorted(viewed) == sorted(set(viewed)) and len(viewed) == 6  # each study's view, made to generate
    answer, digest = (reworded["columns"].index(name) for name in ("answer", "answer_digest"))
    for made, fresh in zip(reworded["items"], generated["items"], strict=True):
        if made[0] == edited:  # kept as edited, without a digest; else as generated
            assert made[answer] == fresh[answer] + " (edited)" and made[digest] is None
            made = (*made[:answer], fresh[answer], *made[answer + 1 : digest], fresh[digest], *made[digest + 1 :])
        assert made == fresh
    assert reworded["parts"] == generated["parts"] and reworded["done"] == generated["done"]
    assert (source == "finding_describe") == bool(reworded["parts"])


def _qa_build(out: Path, user: Path) -> dict[str, list]:
    """The QA stage of the demo build under ``out`` with the user templates of ``user``; the rows of template `mine`
    it made (items, parts, done rows, without their run and time), and the item columns."""
    from cxrvqa.cli import _demo_inputs
    from flows.build import build_dataset

    inputs = _demo_inputs()
    qa = {**inputs["qa"], "template_dirs": [user]}
    build_dataset(load_config(None, {**inputs, "out_dir": out, "qa": qa, "stages": ["qa"]}))
    mine = "FROM qa_items WHERE template_id = 'mine' AND template_version = ?"
    with Store(out / "cxrvqa.duckdb", read_only=True) as store:
        [(version,)] = store.query(
            "SELECT template_version FROM qa_done WHERE template_id = 'mine' ORDER BY created_at DESC LIMIT 1"
        )
        parts = "FROM qa_answer_parts WHERE template_version = ? AND item_id IN (SELECT item_id {mine})"
        return {
            "items": store.query(f"SELECT * EXCLUDE (run_id, created_at) {mine} ORDER BY item_id", [version]),
            "parts": store.query(f"SELECT * {parts.format(mine=mine)} ORDER BY ALL", [version, version]),
            "done": store.query(
                "SELECT * EXCLUDE (run_id, created_at) FROM qa_done WHERE template_id = 'mine' AND "
                "template_version = ? ORDER BY ALL",
                [version],
            ),
            "columns": [
                d[0] for d in store.con.execute(f"SELECT * EXCLUDE (run_id, created_at) {mine}", [version]).description
            ],
        }
