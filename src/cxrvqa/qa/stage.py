"""The QA stage over batches of studies: current scene graphs + templates -> `qa_items`.

A (study, template) pair is skipped when `qa_done` has it for the study's current input and the
template's version, so a rerun generates only for new or changed studies and edited or added
templates. After the batches, `balance` sets per question (template and arguments), or per template, which
'yes' and 'no' candidates the current dataset keeps (those whose item hash is below a threshold, kept from
the previous balance while its share stays within the tolerance: stable across rebuilds), and stores the
current dataset's keys with their complementary pairs and its question-only baseline (`select_current`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import chain
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any

import orjson
import pyarrow as pa

from cxrvqa.config import Config
from cxrvqa.errors import StoreError
from cxrvqa.core.balance import (
    Balanced,
    Quota,
    balance_questions,
    eval_thresholds,
    even_quota,
    stored_questions,
    within_tolerance,
)
from cxrvqa.core.parallel import (
    Split,
    collector_paused,
    pool_chunk_size,
    pool_chunks,
    process_map,
    weighted_split,
)
from cxrvqa.core.prior import PriorFigure, baseline_code_hash, combined, measure, normalise, stored_prior
from cxrvqa.core.provenance import code_version, stable_hash
from cxrvqa.qa.programs import PROGRAMS
from cxrvqa.qa.generate import GenerationSettings, generate_study, item_digest, names_of, question_of
from cxrvqa.qa.study import Box, ImageView, study_view
from cxrvqa.qa.templates import (
    WORDING_TEMPLATE_FIELDS,
    Template,
    check_examples,
    generation_environment,
    load_templates,
    template_version,
)
from cxrvqa.store import StageCounts, Store, in_studies, study_params
from cxrvqa.store.records import ANSWER_DIGEST, ANSWER_FIELDS, ITEM_SCHEMA, PART_SCHEMA, answer_digest
from cxrvqa.store.shards import Tables, write_tables

#: The stage's name (config `stages`, `run_stages.stage`, the flow's batch task `qa-batch`).
NAME = "qa"

#: The fewest pending studies worth a process pool.
POOL_MIN_STUDIES = 4000

#: The input of one study's QA: its graph, patient, images (view, PNG size) and boxes; of the studies from the
#: second parameter to the third (a range: the query holds every graph of it at once).
STUDY_INPUTS_SQL = """
WITH imgs AS (
    SELECT study_id, string_agg(concat_ws(':', image_id, view_plane, view_position, png_cols, png_rows,
                                          source_split), ','
                                ORDER BY image_id) AS images
    FROM current_images WHERE study_id BETWEEN $2 AND $3 GROUP BY study_id),
bx AS (SELECT study_id, string_agg(box_id, ',' ORDER BY box_id) AS boxes FROM current_boxes
       WHERE study_id BETWEEN $2 AND $3 GROUP BY study_id)
SELECT g.study_id, g.graph_id, r.patient_id,
       md5(concat_ws('|', md5(g.graph::VARCHAR), r.patient_id, coalesce(i.images, ''), coalesce(b.boxes, '')))
           AS input_hash
FROM current_scene_graphs g
JOIN current_reports r USING (study_id)
LEFT JOIN imgs i USING (study_id)
LEFT JOIN bx b USING (study_id)
WHERE g.backend = $1 AND g.study_id BETWEEN $2 AND $3
"""
#: Studies per STUDY_INPUTS_SQL range: all of a 100k build's at once spilled under a 512MB cap (7.1 s, 2.1 s with
#: 1GB) and stopped out of memory under 384MB.
INPUT_RANGE = 10_000


@dataclass(frozen=True)
class QAStageContext:
    settings: GenerationSettings
    backend: str
    positive_share: float
    workers: int
    balance: str = "per_question"  # per_question | per_template (qa.balance)
    tolerance: float = 0.05  # qa.balance_tolerance
    #: (template id, its version, an earlier version of it that differs only in wording): `reworded`
    reworded: tuple[tuple[str, str, str], ...] = ()
    #: the runs whose items of an earlier version a reworded template's items are made from: `same_runs`
    same_runs: tuple[str, ...] = ()

    @property
    def templates(self) -> tuple[tuple[Template, str], ...]:
        return self.settings.templates


def _load_templates(config: Config) -> tuple[tuple[tuple[str, str], ...], tuple[Template, ...]]:
    """The plugin programs (source, hash) and the templates of a build's QA stage."""
    from cxrvqa.qa.plugins import load_programs

    modules = load_programs(config.qa.program_modules)  # plugin programs first: templates name them
    return modules, load_templates(tuple(config.qa.template_dirs))


def check_templates(config: Config) -> None:
    """What a build whose stages include QA does before any stage runs (the CLI and a direct call of the
    `build_dataset` flow alike): a TemplateError for a template that does not load or whose worked examples
    fail, naming its file and each failing example."""
    if "qa" in config.stages:
        check_examples(_load_templates(config)[1])


def prepare(config: Config, store: Store | None = None) -> QAStageContext:
    """The generation settings; given the build's store, also the reworded templates and the runs their items may
    be made from (`load_batch`)."""
    modules, templates = _load_templates(config)
    splits = tuple(config.qa.splits.items())
    split_from = config.qa.split_from
    settings = GenerationSettings(
        seed=config.seed,
        splits=splits,
        split_from=split_from,
        templates=tuple((t, template_version(t, config.seed, splits, split_from)) for t in templates),
        program_modules=modules,
    )
    return QAStageContext(
        settings,
        config.qa.backend or config.extraction.backend,
        config.qa.positive_share,
        config.qa.workers,
        config.qa.balance,
        config.qa.balance_tolerance,
        reworded=reworded(store, settings) if store is not None else (),
        same_runs=same_runs(store, config) if store is not None else (),
    )


#: The tables the studies' input hashes read (`STUDY_INPUTS_SQL`, through the current views) and `qa_inputs` itself:
#: written by inserts, and a row changed in place gets a new `created_at` (a restored graph; a report or image read
#: again is deleted and inserted anew), so their row counts and newest rows tell whether the hashes can have changed
#: (`_input_state`, with the query and the schema's version: an edit of either makes them again).
INPUT_STATE_TABLES = (
    "scene_graphs",
    "reports",
    "report_rejects",
    "retirements",
    "images",
    "boxes",
    "box_imports",
    "qa_inputs",
)


def _input_state(store: Store, backend: str) -> str:
    """The fingerprint of what the studies' input hashes are made from (`INPUT_STATE_TABLES`), for a backend."""
    [(schema,)] = store.query("SELECT max(version) FROM schema_migrations")
    state = [schema, *store.rows_state(INPUT_STATE_TABLES)]
    return stable_hash([backend, STUDY_INPUTS_SQL, *(str(value) for value in state)], length=32)


def stored_definition(template: Template, settings: GenerationSettings) -> str:
    """A template's definition as `qa_templates.definition` holds it (JSON; its tuples as lists), with the hash of
    what its items depend on besides it (`generation_environment`: the vocabularies are no code, and an edited one
    gives every template a new version): a version that differs only in wording made the same items but their
    questions only under the same environment (`reworded`)."""
    environment = stable_hash(generation_environment(settings.seed, settings.splits, settings.split_from))
    return json.dumps({**template.definition(), "environment": environment}, default=list)


def same_runs(store: Store, config: Config) -> tuple[str, ...]:
    """The runs of this code (`code_version`: the generator's, the study view's, the checks') and of this seed, split
    shares and split source: what a template's version hashes besides the template (`qa.templates.template_version`)
    and what the checks read besides the item, its template and its study's inputs."""
    settings = _generation_settings(config.model_dump(mode="json"))  # as `runs.config` holds it (`stored_form`)
    return tuple(
        run_id
        for run_id, stored in store.query("SELECT run_id, config FROM runs WHERE code_version = ?", [code_version()])
        if _generation_settings(json.loads(stored)) == settings
    )


def _generation_settings(config: dict[str, Any]) -> list[Any]:
    """The seed, split shares and split source of a run's settings in their JSON form."""
    qa = config.get("qa") or {}
    return [config.get("seed"), qa.get("splits"), qa.get("split_from")]


def reworded(store: Store, settings: GenerationSettings) -> tuple[tuple[str, str, str], ...]:
    """(template id, version, earlier version) of each version `qa_templates` recorded of a current template that
    differs from it only in wording (`qa.templates.WORDING_TEMPLATE_FIELDS`: a question variant added or reworded)."""
    current = {t.id: (v, _unworded(json.loads(stored_definition(t, settings)))) for t, v in settings.templates}
    if not current:
        return ()
    rows = store.query(
        "SELECT DISTINCT template_id, template_version, definition FROM qa_templates "
        "WHERE template_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(current)],
    )
    return tuple(
        sorted(
            (template, current[template][0], earlier)
            for template, earlier, definition in rows
            if earlier != current[template][0] and _unworded(json.loads(definition)) == current[template][1]
        )
    )


def _unworded(definition: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in definition.items() if key not in WORDING_TEMPLATE_FIELDS}


def record_inputs(store: Store, run_id: str, context: QAStageContext) -> int:
    """Register this run's templates and the studies whose input changed; returns the number of studies. The input
    hashes are made again only where the tables they read changed since they were last recorded (`_input_state`):
    they hash every current graph (100k synthetic studies: ~3.5 s of every rebuild)."""
    now = datetime.now(timezone.utc)
    with store.transaction():
        store.insert(
            "qa_templates",
            [
                {
                    "run_id": run_id,
                    "template_id": t.id,
                    "template_version": version,
                    "source": t.source,
                    "definition": stored_definition(t, context.settings),
                    "lists": PROGRAMS[t.program].lists,
                    "created_at": now,
                }
                for t, version in context.templates
            ],
        )
        state = store.query(
            "SELECT fingerprint FROM qa_input_states WHERE backend = ? ORDER BY created_at DESC LIMIT 1",
            [context.backend],
        )
        if state != [(_input_state(store, context.backend),)]:
            _record_study_inputs(store, run_id, context.backend, now)
    return store.query("SELECT count(*) FROM current_scene_graphs WHERE backend = ?", [context.backend])[0][0]


def _record_study_inputs(store: Store, run_id: str, backend: str, now: datetime) -> None:
    """The `qa_inputs` rows of the studies whose input hash changed, then the state they were made from."""
    studies = [study for (study,) in store.query("SELECT study_id FROM current_reports ORDER BY study_id")]
    for start in range(0, len(studies), INPUT_RANGE):
        first, last = studies[start], studies[min(start + INPUT_RANGE, len(studies)) - 1]
        store.con.execute(
            "INSERT INTO qa_inputs SELECT s.study_id, s.input_hash, s.graph_id, $4, $5 "
            f"FROM ({STUDY_INPUTS_SQL}) s WHERE NOT EXISTS (SELECT 1 FROM current_qa_inputs c "
            "WHERE c.study_id BETWEEN $2 AND $3 AND c.study_id = s.study_id AND c.input_hash = s.input_hash "
            "AND c.graph_id = s.graph_id)",
            [backend, first, last, run_id, now],
        )
    store.insert(
        "qa_input_states",
        [{"backend": backend, "fingerprint": _input_state(store, backend), "run_id": run_id, "created_at": now}],
    )


#: The current studies of a backend (`?`) with their input hashes, and the done rows of the templates registered as
#: `_templates` (`pending_work`).
_STUDIES_CTE = (
    "WITH studies AS (SELECT i.study_id, i.input_hash FROM current_qa_inputs i "
    "JOIN current_scene_graphs g ON g.graph_id = i.graph_id AND g.backend = ?), "
    "done AS (SELECT study_id, input_hash, template_id, template_version FROM qa_done "
    "SEMI JOIN _templates USING (template_id, template_version)) "
)


def pending_work(store: Store, context: QAStageContext) -> tuple[int, list[tuple[str, list[str]]]]:
    """(studies with a current graph, [(study_id, template ids still to generate)]).

    The templates done for every current study are left out first (one count per template of its done rows of
    the current inputs), so that only the others' (study, template) pairs meet the done rows: a template edit's
    rebuild pairs its one template with its studies (100k synthetic studies, 39 templates, one edited: 3.3-3.9 ->
    2.2-2.5 s; none: 2.8-3.6 -> 1.0-1.9 s)."""
    total = store.query("SELECT count(*) FROM current_scene_graphs WHERE backend = ?", [context.backend])[0][0]
    with store.registered("_templates", _templates_table(context.templates)):
        complete = {
            template
            for (template,) in store.query(
                f"{_STUDIES_CTE} SELECT template_id FROM done SEMI JOIN studies USING (study_id, input_hash) "
                "GROUP BY template_id, template_version "
                "HAVING count(DISTINCT study_id) = (SELECT count(*) FROM studies)",
                [context.backend],
            )
        }
    todo = [(t, v) for t, v in context.templates if t.id not in complete]
    if not todo:
        return total, []
    with store.registered("_templates", _templates_table(todo)):
        # a study that needs every template (a first build) comes back with NULL instead of the full list;
        # an anti join of (study, template) pairs with the done rows of these templates (a correlated NOT
        # EXISTS took 5.4 s at 100k studies)
        rows = store.query(
            f"{_STUDIES_CTE} SELECT study_id, CASE WHEN count(*) < ? THEN list(template_id ORDER BY template_id) END "
            "FROM studies CROSS JOIN _templates ANTI JOIN done USING (study_id, input_hash, template_id, "
            "template_version) GROUP BY study_id ORDER BY study_id",
            [context.backend, len(context.templates)],
        )
    every = [t.id for t, _ in context.templates]
    shared: dict[tuple[str, ...], list[str]] = {}  # one list object per distinct template set
    return total, [(study, every if ids is None else shared.setdefault(tuple(ids), list(ids))) for study, ids in rows]


def _templates_table(templates: Iterable[tuple[Template, str]]) -> pa.Table:
    """(template_id, template_version) of the templates, as `pending_work` joins them."""
    pairs = [(t.id, v) for t, v in templates]
    return pa.table({"template_id": [t for t, _ in pairs], "template_version": [v for _, v in pairs]})


def batches(context: QAStageContext) -> Split:
    """How the pending studies (`pending_work`) become batches (`flows.build._batches`): ``size`` studies, or more
    where they need few of the templates (a template's rebuild needs one), until they need as many (study, template)
    pairs as ``size`` studies needing every template (`weighted_split`)."""
    return weighted_split(lambda study: len(study[1]), len(context.templates))


@dataclass(frozen=True)
class StudyQAInput:
    study_id: str
    patient_id: str
    graph_id: str
    input_hash: str
    graph: str  # scene graph JSON
    images: tuple[ImageView, ...]
    template_ids: frozenset[str]


def images_of(store: Store, study_ids: list[str]) -> dict[str, tuple[ImageView, ...]]:
    """The current images of these studies with their boxes in PNG pixels."""
    boxes: dict[str, tuple[list[Box], list[Box]]] = {}
    for image_id, kind, label, x0, y0, x1, y1 in store.query(
        "SELECT image_id, kind, label, x_min, y_min, x_max, y_max FROM current_boxes "
        f"WHERE {in_studies('study_id')} ORDER BY box_id",
        study_params(study_ids),
    ):
        finding_boxes, region_boxes = boxes.setdefault(image_id, ([], []))
        (finding_boxes if kind == "finding" else region_boxes).append(Box(label, x0, y0, x1, y1))
    images: dict[str, list[ImageView]] = {}
    for study, image_id, position, plane, cols, rows, split in store.query(
        "SELECT study_id, image_id, view_position, view_plane, png_cols, png_rows, source_split "
        f"FROM current_images WHERE {in_studies('study_id')} ORDER BY study_id, image_id",
        study_params(study_ids),
    ):
        finding_boxes, region_boxes = boxes.get(image_id, ([], []))
        images.setdefault(study, []).append(
            ImageView(image_id, position, plane, cols, rows, tuple(finding_boxes), tuple(region_boxes), split)
        )
    return {study: tuple(views) for study, views in images.items()}


def load_inputs(store: Store, work: list[tuple[str, list[str]]], backend: str) -> list[StudyQAInput]:
    wanted = {study: frozenset(ids) for study, ids in work}
    study_ids = list(wanted)
    images = images_of(store, study_ids)
    # each view narrowed to the batch: with the filter on the inputs alone DuckDB evaluated the graphs' and
    # reports' windows over every study (0.6-1.0 s a batch of 2,000 at 100k studies; narrowed 0.13 s)
    params = study_params(study_ids)
    rows = store.query(
        "SELECT i.study_id, r.patient_id, i.graph_id, i.input_hash, g.graph FROM current_qa_inputs i "
        "JOIN current_scene_graphs g ON g.graph_id = i.graph_id AND g.backend = ? "
        "JOIN current_reports r ON r.study_id = i.study_id "
        f"WHERE {in_studies('i.study_id')} AND {in_studies('g.study_id')} AND {in_studies('r.study_id')} "
        "ORDER BY i.study_id",
        [backend, *params, *params, *params],
    )
    return [
        StudyQAInput(study, patient, graph_id, input_hash, graph, images.get(study, ()), wanted[study])
        for study, patient, graph_id, input_hash, graph in rows
    ]


DONE_COLUMNS = ("study_id", "input_hash", "template_id", "template_version", "n_items")
#: A chunk's done rows (`generate_chunk`): the columns of `qa_done` but the provenance.
DONE_SCHEMA = pa.schema([*((name, pa.string()) for name in DONE_COLUMNS[:-1]), (DONE_COLUMNS[-1], pa.int64())])


def generate_chunk(
    chunk: list[StudyQAInput], settings: GenerationSettings, backend: str
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The item, part and done tables (`DONE_COLUMNS`: a row per study and template) of a chunk of studies, built
    in the worker: only Arrow buffers travel back (the done rows as tuples were 3.9M in a 100k-study build, pickled,
    and made into a table by the flow's process); made with the cyclic garbage collector paused."""
    with collector_paused():
        return _chunk_tables(chunk, settings, backend)


def _chunk_tables(
    chunk: list[StudyQAInput], settings: GenerationSettings, backend: str
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """generate_chunk's tables: a function of its own so that the rows are freed before the collector resumes
    (else its first collection scans them all)."""
    item_rows: list[tuple] = []
    part_rows: list[tuple] = []
    done = []
    template_versions = {t.id: v for t, v in settings.templates}
    for study in chunk:
        view = study_view(orjson.loads(study.graph), study.patient_id, study.images)
        items, parts, counts = generate_study(view, settings, study.template_ids)
        tail = (study.graph_id, backend, study.input_hash)
        item_rows.extend(row + tail for row in items)
        versions = {row[0]: row[2] for row in items}
        part_rows.extend(row + (versions[row[0]], study.input_hash) for row in parts)
        done.extend(
            (study.study_id, study.input_hash, template_id, template_versions[template_id], count)
            for template_id, count in counts.items()
        )
    items = pa.table(_columns(tuple(ITEM_SCHEMA.names), item_rows), schema=ITEM_SCHEMA)
    digests = pa.array([answer_digest(row) for row in item_rows], ANSWER_DIGEST[1])
    return (
        items.append_column(ANSWER_DIGEST[0], digests),
        pa.table(_columns(tuple(PART_SCHEMA.names), part_rows), schema=PART_SCHEMA),
        pa.table(_columns(DONE_COLUMNS, done), schema=DONE_SCHEMA),
    )


def _columns(names: tuple[str, ...], rows: list[tuple]) -> dict[str, list]:
    """Rows -> one list per column (transposed in C by zip)."""
    if not rows:
        return {name: [] for name in names}
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}


def _with_constants(table: pa.Table, constants: dict[str, Any]) -> pa.Table:
    """The table with a column per constant, its one value repeated in C (a list of n Python values converted took
    3.7 s of the flow's process in a 100k-study build, 6.25M candidates)."""
    for name, value in constants.items():
        table = table.append_column(name, pa.repeat(value, table.num_rows))
    return table


@dataclass(frozen=True)
class Reworded:
    """A batch's items of reworded templates as their earlier version made them (`REWORDED_*_SQL`), the current
    version's already in their rows, parts and done rows: only their questions and answer digests are still the
    earlier version's (`reword_chunk`)."""

    items: pa.Table
    parts: pa.Table
    done: pa.Table


@dataclass(frozen=True)
class QAWork:
    """A batch: the studies whose templates' items are generated, and those made from a rewording's earlier version."""

    studies: list[StudyQAInput]
    reworded: Reworded | None = None


#: Per pending (study, template) pair of a reworded template (`_pairs`: study, template, version, earlier version),
#: the done row of its earlier version for the study's current input, by a run of the same code and settings (the
#: second parameter: `same_runs`), the latest; the current graph id and backend. The earlier version made the same
#: items of the same inputs but for their questions (`qa.templates.WORDING_TEMPLATE_FIELDS`).
REWORDED_DONE_SQL = (
    "SELECT d.study_id, d.input_hash, d.template_id, p.template_version, d.n_items, d.template_version AS earlier, "
    "d.run_id, i.graph_id, g.backend FROM qa_done d JOIN _pairs p ON p.study_id = d.study_id "
    "AND p.template_id = d.template_id AND p.earlier = d.template_version JOIN current_qa_inputs i "
    "ON i.study_id = d.study_id AND i.input_hash = d.input_hash "
    "JOIN current_scene_graphs g ON g.graph_id = i.graph_id AND g.backend = ? "
    "WHERE d.run_id IN (SELECT unnest(?::VARCHAR[])) AND {done} AND {inputs} "
    "QUALIFY row_number() OVER (PARTITION BY d.study_id, d.template_id ORDER BY d.created_at DESC) = 1"
)
#: The rows those runs made (`_done`: REWORDED_DONE_SQL's rows), under the current version and graph id, in the order
#: they were made; then their answer parts.
REWORDED_ITEMS_SQL = (
    "SELECT {columns} FROM qa_items q JOIN _done d ON q.study_id = d.study_id AND q.template_id = d.template_id "
    "AND q.template_version = d.earlier AND q.input_hash = d.input_hash AND q.run_id = d.run_id "
    "WHERE {items} ORDER BY q.rowid"
)
REWORDED_PARTS_SQL = (
    "SELECT DISTINCT {columns} FROM qa_answer_parts p JOIN _items q ON p.item_id = q.item_id AND p.template_version "
    "= q.earlier AND p.input_hash = q.input_hash ORDER BY p.item_id, p.part_index"
)


def load_batch(store: Store, work: list[tuple[str, list[str]]], context: QAStageContext) -> tuple[QAWork, StageCounts]:
    """The batch's studies to generate, less the (study, template) pairs a rewording's earlier version made."""
    found = _reworded_rows(store, work, context) if context.reworded and context.same_runs else None
    counts = StageCounts(n_input=len(work))
    if found is None:
        return QAWork(load_inputs(store, work, context.backend)), counts
    made = set(zip(found.done.column("study_id").to_pylist(), found.done.column("template_id").to_pylist()))
    rest = [(study, [t for t in ids if (study, t) not in made]) for study, ids in work]
    return QAWork(load_inputs(store, [(study, ids) for study, ids in rest if ids], context.backend), found), counts


def _reworded_rows(store: Store, work: list[tuple[str, list[str]]], context: QAStageContext) -> Reworded | None:
    """The batch's items (with their parts and done rows) that a reworded template's earlier version made
    (REWORDED_*_SQL); None when there are none."""
    versions = {template: (version, earlier) for template, version, earlier in context.reworded}
    pairs = [(study, t, *versions[t]) for study, ids in work for t in ids if t in versions]
    if not pairs:
        return None
    names = ("study_id", "template_id", "template_version", "earlier")
    params = study_params([study for study, _ in work])
    with store.registered("_pairs", pa.table(dict(zip(names, map(list, zip(*pairs, strict=True)), strict=True)))):
        done = store.con.sql(
            REWORDED_DONE_SQL.format(done=in_studies("d.study_id"), inputs=in_studies("i.study_id")),
            params=[context.backend, list(context.same_runs), *params, *params],
        ).to_arrow_table()
    if done.num_rows == 0:
        return None
    replaced = {"template_version": "d.template_version", "graph_id": "d.graph_id", "backend": "d.backend"}
    columns = [f"{replaced.get(name, 'q.' + name)} AS {name}" for name in (*ITEM_SCHEMA.names, ANSWER_DIGEST[0])]
    with store.registered("_done", done):
        items = store.con.sql(
            REWORDED_ITEMS_SQL.format(columns=", ".join([*columns, "d.earlier"]), items=in_studies("q.study_id")),
            params=params,
        ).to_arrow_table()
    part_columns = [f"{'q' if name == 'template_version' else 'p'}.{name}" for name in PART_SCHEMA.names]
    with store.registered("_items", items):
        parts = store.con.sql(REWORDED_PARTS_SQL.format(columns=", ".join(part_columns))).to_arrow_table()
    return Reworded(  # the generator's types: a batch's generated and reworded rows are joined (`write_tables`)
        items.drop_columns(["earlier"]).cast(pa.schema([*ITEM_SCHEMA, ANSWER_DIGEST])),
        parts.cast(PART_SCHEMA),
        done.select(list(DONE_COLUMNS)).cast(DONE_SCHEMA),
    )


def reword_chunk(items: pa.Table, settings: GenerationSettings) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Items an earlier version of their templates made, asked in the current wording: their questions and answer
    digests made again (`qa.generate.question_of`; the rest of an item is made from what a rewording keeps), as
    `generate_chunk`'s item table (and no parts or done rows: `Reworded` holds them). An item whose answer fields no
    longer have the digest recorded when it was made gets none, so that its validation makes it again and compares
    (`validators.check_answer_program`), as it did the earlier one. In a worker."""
    templates = {t.id: t for t, _ in settings.templates}
    names = ["item_id", "template_id", "study_id", "image_id", "arguments", ANSWER_DIGEST[0], *ANSWER_FIELDS]
    questions: list[str] = []
    digests: list[str | None] = []
    for row in items.select(names).to_pylist():
        template = templates[row["template_id"]]
        digest = item_digest(settings.seed, template.id, row["study_id"], row["image_id"], row["arguments"])
        if "qa-" + digest[:10].hex() != row["item_id"]:
            raise StoreError(
                f"qa_items row {row['item_id']!r}: expected its template, study, image and arguments to hash to its "
                f"id under seed {settings.seed}, found {'qa-' + digest[:10].hex()!r}"
            )
        intact = answer_digest(row) == row[ANSWER_DIGEST[0]]  # else changed after it was made: made again when
        row["question"] = question_of(template, names_of(json.loads(row["arguments"])), digest)  # validated
        questions.append(row["question"])
        digests.append(answer_digest(row) if intact else None)
    at = items.schema.get_field_index
    items = items.set_column(at("question"), "question", pa.array(questions, pa.string()))
    items = items.set_column(at(ANSWER_DIGEST[0]), ANSWER_DIGEST[0], pa.array(digests, ANSWER_DIGEST[1]))
    return items, PART_SCHEMA.empty_table(), DONE_SCHEMA.empty_table()


def compute_batch(work: QAWork, context: QAStageContext, run_id: str) -> Iterator[Tables]:
    """The `qa_items` and `qa_answer_parts` rows of these studies chunk by chunk over the worker processes
    (written a row group at a time while the workers make the next ones: `write_tables`; the chunks are the pool's
    from the call on), then those of the reworded templates' earlier items asked anew, then their `qa_done` rows.
    Pure."""
    fn = partial(generate_chunk, settings=context.settings, backend=context.backend)
    # enough chunks per worker for process_map to use the pool and keep every worker busy
    chunks = pool_chunks(work.studies, context.workers)
    made = process_map(fn, chunks, context.workers, len(work.studies))
    found = work.reworded
    if found is None:
        return _tables(made, run_id)
    rows, size = found.items.num_rows, pool_chunk_size(found.items.num_rows, context.workers)
    # compact copies (a slice would pickle the whole table), enough of them for process_map to use the pool
    slices = [found.items.take(pa.array(range(at, min(rows, at + size)))) for at in range(0, rows, size)]
    reworded = process_map(partial(reword_chunk, settings=context.settings), slices, context.workers)
    kept = (found.items.schema.empty_table(), found.parts, found.done)
    return _tables(chain(made, reworded, [kept]), run_id)


def starts_ahead(context: QAStageContext) -> bool:
    """A batch generates its own studies' items and reads nothing another batch writes (`cxrvqa.core.batch`)."""
    return True


def _tables(chunks: Iterable[tuple], run_id: str) -> Iterator[Tables]:
    """The chunks' item and part tables with their provenance, then the batch's `qa_done` rows."""
    provenance = {"run_id": run_id, "code_version": code_version(), "created_at": datetime.now(timezone.utc)}
    done_tables: list[pa.Table] = []
    for items, parts, done in chunks:
        yield {"qa_items": _with_constants(items, provenance), "qa_answer_parts": parts}
        done_tables.append(done)
    done = pa.concat_tables(done_tables) if done_tables else DONE_SCHEMA.empty_table()
    yield {"qa_done": _with_constants(done, {"run_id": run_id, "created_at": provenance["created_at"]})}


def write_batch(store: Store, counts: StageCounts, parts: Iterable[Tables], context: QAStageContext) -> StageCounts:
    counts.n_done += write_tables(store, parts)["qa_items"]
    return counts


def question_quota(n_pos: int, n_neg: int, target: float) -> tuple[int, int]:
    """(yes, no) items one question keeps of its candidates: every item of the rarer side (relative to the
    target share) and as many of the other as reach the share, at least one each; nothing when a side is
    missing (no padding)."""
    if not (n_pos and n_neg):
        return 0, 0
    if n_neg * target >= n_pos * (1 - target):  # 'yes' is the rarer side
        return n_pos, min(n_neg, max(1, round(n_pos * (1 - target) / target)))
    return min(n_pos, max(1, round(n_neg * target / (1 - target)))), n_neg


def template_rates(n_pos: int, n_neg: int, target: float) -> tuple[float, float]:
    """(positive_keep_rate, keep_rate) of a per-template balance: the side in excess sampled down to the target
    share; a template with one side keeps all."""
    if not (n_pos and n_neg):
        return 1.0, 1.0
    return (min(1.0, n_neg * target / ((1 - target) * n_pos)), min(1.0, n_pos * (1 - target) / (target * n_neg)))


def _question_rows(
    store: Store, run_id: str, targets: dict[str, float], context: QAStageContext, now: datetime, same: list[str]
) -> list[dict[str, Any]]:
    """The per-question balance of the current yes/no candidates against the latest balance's thresholds
    (`balance_questions` with `question_quota` and the template's target 'yes' share); the questions of the ``same``
    templates (`_unchanged_templates`) from their stored counts (`stored_questions`)."""
    previous = {
        (t, v, a): {"yes": p, "no": n}
        for t, v, a, p, n in store.query(
            "SELECT template_id, template_version, arguments, positive_threshold, negative_threshold "
            "FROM current_qa_question_balance WHERE positive_threshold IS NOT NULL"
        )
    }

    def quota(key: tuple[str, ...], counts: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[float, ...]]:
        target = targets.get(key[0], context.positive_share)
        return question_quota(*counts, target), (target, 1 - target)

    stored = store.query(
        "SELECT template_id, template_version, arguments, answer, threshold, n, kept FROM current_qa_question_balance "
        "CROSS JOIN LATERAL (VALUES ('yes', positive_threshold, n_positive, n_positive_kept), "
        "('no', negative_threshold, n_negative, n_negative_kept)) AS a(answer, threshold, n, kept) "
        "WHERE list_contains(?::VARCHAR[], template_id) ORDER BY template_id, template_version, arguments, answer DESC",
        [same],
    )
    questions = _balanced_with_stored(
        store,
        "SELECT template_id, template_version, arguments, ['yes', 'no'] AS options, "
        "CASE WHEN polarity THEN 'yes' ELSE 'no' END AS answer, sample_u FROM current_qa_candidates "
        "WHERE polarity IS NOT NULL",
        ("template_id", "template_version", "arguments"),
        previous,
        quota,
        context.tolerance,
        stored,
        same,
    )
    return [_question_row(q, targets.get(q.key[0], context.positive_share), run_id, now) for q in questions]


def _balanced_with_stored(
    store: Store,
    items: str,
    keys: tuple[str, ...],
    previous: dict[tuple[str, ...], dict[str, float]],
    quota: Quota,
    tolerance: float,
    stored: list[tuple],
    same: list[str],
) -> list[Balanced]:
    """`balance_questions` over the ``items`` of the templates not in ``same``, and the questions of those in it
    settled from their ``stored`` rows (`stored_questions`); every template's items where one is not settled."""
    kept = stored_questions(stored, quota, tolerance)
    counted = balance_questions(
        store,
        f"{items} AND NOT list_contains(?::VARCHAR[], template_id)",
        keys,
        previous,
        quota,
        tolerance,
        [[] if kept is None else same],
    )
    return counted + (kept or [])


def _question_row(question: Balanced, target: float, run_id: str, now: datetime) -> dict[str, Any]:
    """A yes/no question's `qa_question_balance` row (a question without one of the answers says which)."""
    (template_id, version, arguments), (n_pos, n_neg) = question.key, question.counts
    return {
        "run_id": run_id,
        "template_id": template_id,
        "template_version": version,
        "arguments": arguments,
        "n_positive": n_pos,
        "n_negative": n_neg,
        "target_share": target,
        "n_positive_kept": question.result.kept[0],
        "n_negative_kept": question.result.kept[1],
        "missing": None if n_pos and n_neg else ("yes" if n_neg else "no"),
        "created_at": now,
        "positive_threshold": question.result.thresholds[0],
        "negative_threshold": question.result.thresholds[1],
        "basis": question.result.basis,
    }


def _choice_rows(
    store: Store, run_id: str, context: QAStageContext, now: datetime, same: list[str]
) -> list[dict[str, Any]]:
    """The per-question balance of the current multiple-choice candidates, one row per question (template and
    sorted options) and option, against the latest balance's thresholds: each option the answer equally often,
    as often as the rarest (nothing when one never is), so that an option's value says nothing of whether it is
    the answer. The questions of the ``same`` templates (`_unchanged_templates`) from their stored counts."""
    previous: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for t, v, options, answer, threshold in store.query(
        "SELECT template_id, template_version, options::VARCHAR, answer, threshold FROM current_qa_choice_balance"
    ):
        previous[(t, v, options)][answer] = threshold
    stored = store.query(
        "SELECT template_id, template_version, options::VARCHAR, answer, threshold, n_items, n_kept "
        "FROM current_qa_choice_balance WHERE list_contains(?::VARCHAR[], template_id) "
        "ORDER BY template_id, template_version, options::VARCHAR, list_position(options, answer)",
        [same],
    )
    questions = _balanced_with_stored(
        store,
        "SELECT template_id, template_version, list_sort(options)::VARCHAR AS question, list_sort(options) AS options, "
        "answer, sample_u FROM current_qa_candidates WHERE answer_format = 'multiple_choice'",
        ("template_id", "template_version", "question"),
        previous,
        even_quota,
        context.tolerance,
        stored,
        same,
    )
    return [
        {
            "run_id": run_id,
            "template_id": q.key[0],
            "template_version": q.key[1],
            "options": list(q.options),
            "answer": option,
            "n_items": n,
            "n_kept": kept,
            "threshold": threshold,
            "basis": q.result.basis,
            "created_at": now,
        }
        for q in questions
        for option, n, kept, threshold in zip(q.options, q.counts, q.result.kept, q.result.thresholds, strict=True)
    ]


def balance(store: Store, run_id: str, context: QAStageContext) -> list[dict[str, Any]]:
    """Balance the yes/no candidates and record it (`qa_balance`, per template; `qa_question_balance`, per
    question); returns the per-template rows. The current dataset's keys are stored in the same transaction.

    per_question: per template and arguments, `_question_rows`: item-hash thresholds per side, kept from the
    previous balance while they stay within the tolerance; the template's keep rates are 1. Multiple choice
    per template and set of options, `_choice_rows` (`qa_choice_balance`): each option the answer equally
    often.
    per_template: per yes/no template, `template_rates` (the side in excess kept below its rate), the
    previous balance's rates kept the same way."""
    targets = {t.id: t.positive_share or context.positive_share for t, _ in context.templates}
    per_question = context.balance == "per_question"
    now = datetime.now(timezone.utc)
    same = _unchanged_templates(store) if per_question else []
    questions = _question_rows(store, run_id, targets, context, now, same) if per_question else []
    choices = _choice_rows(store, run_id, context, now, same) if per_question else []
    counts = _template_counts(store, same)
    previous = {} if per_question else _previous_template_rates(store)
    rows = []
    for template_id, version, n_pos, n_neg in counts:
        target = targets.get(template_id, context.positive_share)
        keep_pos, keep_neg = (1.0, 1.0) if per_question else template_rates(n_pos, n_neg, target)
        rows.append(
            {
                "run_id": run_id,
                "template_id": template_id,
                "template_version": version,
                "n_positive": n_pos,
                "n_negative": n_neg,
                "target_share": target,
                "keep_rate": keep_neg,
                "positive_keep_rate": keep_pos,
                "created_at": now,
                "mode": context.balance,
                "basis": "new" if per_question or (template_id, version) not in previous else "rebalanced",
            }
        )
    if per_question:
        kept = _kept_per_template(questions)
    else:
        kept = _kept_previous_rates(store, rows, previous, context.tolerance)
    for row in rows:
        kept_pos, kept_neg = kept.get((row["template_id"], row["template_version"]), (0, 0))
        row["n_positive_kept"], row["n_negative_kept"] = kept_pos, kept_neg
        row["achieved_share"] = kept_pos / (kept_pos + kept_neg) if kept_pos + kept_neg else None
    with store.transaction():
        store.insert("qa_balance", rows)
        if questions:
            store.insert("qa_question_balance", questions)
        if choices:
            store.insert("qa_choice_balance", choices)
        select_current(store, run_id, context.tolerance)
    return rows


def _template_counts(store: Store, same: list[str]) -> list[tuple[str, str, int, int]]:
    """(template, version, yes, no) of the current candidates per template, in template order; those of the ``same``
    templates (`_unchanged_templates`) from their stored balance rows."""
    return sorted(
        store.query(
            "SELECT template_id, template_version, count(*) FILTER (polarity), count(*) FILTER (NOT polarity) "
            "FROM current_qa_candidates WHERE NOT list_contains(?::VARCHAR[], template_id) GROUP BY ALL",
            [same],
        )
        + store.query(
            "SELECT template_id, template_version, n_positive, n_negative FROM current_qa_balance "
            "WHERE list_contains(?::VARCHAR[], template_id)",
            [same],
        )
    )


def _previous_template_rates(store: Store) -> dict[tuple[str, str], tuple[float, float]]:
    """(yes, no) keep rates of the current per-template balance, per template and version."""
    return {
        (t, v): (p, n)
        for t, v, p, n in store.query(
            "SELECT template_id, template_version, positive_keep_rate, keep_rate FROM current_qa_balance "
            "WHERE mode = 'per_template'"
        )
    }


def _kept_per_template(questions: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    """Per-question balance: the kept (yes, no) per template and version, summed over its questions."""
    kept: dict[tuple[str, str], tuple[int, int]] = {}
    for q in questions:
        pos, neg = kept.get((q["template_id"], q["template_version"]), (0, 0))
        kept[(q["template_id"], q["template_version"])] = (pos + q["n_positive_kept"], neg + q["n_negative_kept"])
    return kept


def _kept_previous_rates(
    store: Store, rows: list[dict[str, Any]], previous: dict[tuple[str, str], tuple[float, float]], tolerance: float
) -> dict[tuple[str, str], tuple[int, int]]:
    """Per-template balance: a template keeps the previous balance's rates while what they keep is
    `within_tolerance` (its row's rates and basis set so); the kept (yes, no) per template and version."""
    with_previous = [
        {**row, "positive_keep_rate": previous[key][0], "keep_rate": previous[key][1]}
        for row in rows
        if (key := (row["template_id"], row["template_version"])) in previous
    ]
    kept_before = _kept_by_rates(store, with_previous) if with_previous else {}
    for row in rows:
        key = (row["template_id"], row["template_version"])
        if key not in previous:
            continue
        n_pos, n_neg, target = row["n_positive"], row["n_negative"], row["target_share"]
        quota = (round(n_pos * row["positive_keep_rate"]), round(n_neg * row["keep_rate"]))
        one_side = not (n_pos and n_neg) and previous[key] == (1.0, 1.0)
        if one_side or within_tolerance(kept_before.get(key, (0, 0)), quota, (target, 1 - target), tolerance):
            row["positive_keep_rate"], row["keep_rate"] = previous[key]
            row["basis"] = "kept"
    return _kept_by_rates(store, rows)


def _kept_by_rates(store: Store, rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(yes, no) candidates below the keep rates, per template and version."""
    rates = pa.table(
        {
            name: [row[name] for row in rows]
            for name in ("template_id", "template_version", "keep_rate", "positive_keep_rate")
        }
    )
    with store.registered("_rates", rates):
        return {
            (t, v): (p, n)
            for t, v, p, n in store.query(
                "SELECT c.template_id, c.template_version, "
                "count(*) FILTER (c.polarity AND c.sample_u < r.positive_keep_rate), "
                "count(*) FILTER (NOT c.polarity AND c.sample_u < r.keep_rate) FROM current_qa_candidates c "
                "JOIN _rates r USING (template_id, template_version) WHERE c.polarity IS NOT NULL GROUP BY ALL"
            )
        }


#: What the rule selecting the current dataset reads of the studies: the tables behind the candidates' views
#: (append-only, so their row counts tell whether they changed).
SELECTION_STUDIES_SQL = (
    "SELECT (SELECT count(*) FROM qa_inputs), (SELECT count(*) FROM scene_graphs), (SELECT count(*) FROM reports), "
    "(SELECT count(*) FROM report_rejects), (SELECT count(*) FROM retirements)"
)

#: What it reads of each current template: its version, complementary pairs, balance (keep rates and mode), question
#: and choice thresholds, and its items (their count: the rows of a version only grow).
SELECTION_TEMPLATES_SQL = """
WITH items AS (SELECT template_version, count(*) AS n FROM qa_items
               WHERE template_version IN (SELECT template_version FROM current_qa_templates) GROUP BY ALL),
questions AS (
    SELECT template_id, template_version, md5(string_agg(concat_ws('|', arguments, positive_threshold,
        negative_threshold), ',' ORDER BY arguments)) AS thresholds
    FROM current_qa_question_balance GROUP BY ALL),
choices AS (
    SELECT template_id, template_version, md5(string_agg(concat_ws('|', options::VARCHAR, answer, threshold), ','
        ORDER BY options, answer)) AS thresholds
    FROM current_qa_choice_balance GROUP BY ALL)
SELECT t.template_id, t.template_version,
       md5([json_extract(t.definition, '$.complementary_pairs')::VARCHAR, b.keep_rate::VARCHAR,
            b.positive_keep_rate::VARCHAR, b.mode, q.thresholds, m.thresholds, i.n::VARCHAR]::VARCHAR)
FROM current_qa_templates t
LEFT JOIN current_qa_balance b USING (template_id, template_version)
LEFT JOIN questions q USING (template_id, template_version)
LEFT JOIN choices m USING (template_id, template_version)
LEFT JOIN items i USING (template_version)
ORDER BY t.template_id"""

#: The current dataset's keys with their complementary pair (`qa_current`) of the templates in the parameter (NULL:
#: all; the rule `qa_rule`): per question (template, arguments), view plane and split of a template with
#: complementary_pairs, the k-th 'yes' and the k-th 'no' in sample_u order make a pair; computed with the rule, in one
#: statement (an UPDATE after the INSERT rewrote the table: 100k studies 2.7 + 3.5 s).
CURRENT_SQL = """
WITH rule AS (SELECT * FROM qa_rule(?::VARCHAR[])),
paired AS (
    SELECT r.item_id, r.polarity,
           concat_ws('|', r.template_id, r.arguments, coalesce(r.view_plane, 'none'), r.split) AS question,
           row_number() OVER (PARTITION BY r.template_id, r.arguments, r.view_plane, r.split, r.polarity
                              ORDER BY r.sample_u, r.item_id) AS k
    FROM rule r JOIN current_qa_templates t USING (template_id)
    WHERE r.polarity IS NOT NULL AND coalesce(json_extract(t.definition, '$.complementary_pairs')::BOOLEAN, false)),
pairs AS (
    SELECT y.item_id AS yes_id, n.item_id AS no_id, 'pair-' || md5(y.item_id || '|' || n.item_id)[:16] AS pair_id
    FROM paired y JOIN paired n ON n.question = y.question AND n.k = y.k AND NOT n.polarity
    WHERE y.polarity),
paired_ids AS (SELECT yes_id AS item_id, pair_id FROM pairs UNION ALL SELECT no_id, pair_id FROM pairs)
SELECT r.study_id, r.item_id, r.template_version, r.input_hash, p.pair_id
FROM rule r LEFT JOIN paired_ids p USING (item_id)
ORDER BY r.study_id, r.item_id"""

#: Whether an item of another template than $1 asks a question (lower case, multiple choice or not) that an item of
#: the versions $2 (theirs, before and now) asks: only then may the rule's de-duplication (per image or study and
#: question) weigh their items against others', and the rule over them alone not be theirs within the whole. By text
#: over every stored item, which is more than the current candidates on the same images (a text shared elsewhere
#: only costs a whole selection) but needs no key of theirs: 0.01 s where the candidates' keys took 0.1-0.3 s at 10k.
SHARED_QUESTIONS_SQL = """
WITH texts AS (
    SELECT DISTINCT lower(question) AS question, answer_format = 'multiple_choice' AS choice FROM qa_items
    WHERE list_contains($2, template_version))
SELECT EXISTS (
    SELECT 1 FROM qa_items i SEMI JOIN texts t
        ON t.question = lower(i.question) AND t.choice = (i.answer_format = 'multiple_choice')
    WHERE NOT list_contains($1, i.template_id))"""


def select_current(store: Store, run_id: str, tolerance: float = 0.05) -> None:
    """Store the keys of the current dataset (`qa_current`, read by the `current_qa_items` view) with their
    complementary pairs, and its question-only baseline (`qa_prior`): the rule (`qa_current_rule`: current
    inputs and templates, balanced, de-duplicated) evaluated once per QA stage instead of by every query, and
    not at all when what it reads and the baseline's code are unchanged (a no-change rebuild); where the studies
    are unchanged, for the templates whose part of it changed only (`_select`). Ordered by study, so that a batch's
    range of studies reads a few row groups; the baseline then on the changed templates' items only where it can
    (`_prior_of`). Then the evaluation profile's thresholds (`eval_balance`), stable across rebuilds within
    ``tolerance``."""
    studies = stable_hash(list(store.query(SELECTION_STUDIES_SQL)[0]))
    templates = {t: (v, f) for t, v, f in store.query(SELECTION_TEMPLATES_SQL)}
    before = {t: (v, f) for t, v, f in store.query("SELECT * FROM qa_current_templates")}
    stored = store.query("SELECT fingerprint FROM qa_current_source")
    fingerprint = _selection_fingerprint(studies, templates)
    if stored == [(fingerprint,)]:
        if not store.query("SELECT count(*) FROM qa_eval_balance")[0][0]:  # a store migrated since its build
            store.insert("qa_eval_balance", eval_balance(store, run_id, tolerance, datetime.now(timezone.utc)))
        return
    # the evaluation profile's stored thresholds are the last selection's, unless it had none to store
    [(profile_stored, prior_stored)] = store.query(
        "SELECT (SELECT max(created_at) FROM qa_eval_balance) >= (SELECT max(created_at) FROM qa_current_source), "
        "(SELECT max(created_at) FROM current_qa_prior) >= (SELECT max(created_at) FROM qa_current_source)"
    )
    changed = _select(store, studies, templates, before)
    store.con.execute("DELETE FROM qa_current_source")
    store.con.execute("INSERT INTO qa_current_source VALUES (?, now(), ?)", [fingerprint, studies])
    store.con.execute("DELETE FROM qa_current_templates")
    store.insert(
        "qa_current_templates",
        [{"template_id": t, "template_version": v, "fingerprint": f} for t, (v, f) in templates.items()],
    )
    now = datetime.now(timezone.utc)
    figures = None
    if changed is not None and prior_stored and stored == [(_selection_fingerprint(studies, before),)]:
        figures = _prior_of(store, changed, templates, before)
    if figures is None:
        figures = measure(store, "current_qa_items")
    store.insert("qa_prior", [{**f.as_row(), "run_id": run_id, "created_at": now} for f in figures])
    eval_rows = eval_balance(store, run_id, tolerance, now, changed if profile_stored else None)
    if eval_rows:
        store.insert("qa_eval_balance", eval_rows)


def _unchanged_templates(store: Store) -> list[str]:
    """The templates balanced per question whose current candidates and stored balance are as the last selection
    read them (`qa_current_source`, `qa_current_templates`: the studies, the template's version and item count, its
    thresholds): balanced again from their stored counts (`stored_questions`), not their candidates. A template's
    rebuild then counts its own candidates only (100k synthetic studies: the balance's three aggregates over every
    candidate took 4.7 s)."""
    before = {t: (v, f) for t, v, f in store.query("SELECT * FROM qa_current_templates")}
    studies = stable_hash(list(store.query(SELECTION_STUDIES_SQL)[0]))
    if not before or store.query("SELECT studies FROM qa_current_source") != [(studies,)]:
        return []
    modes = dict(store.query("SELECT template_id, mode FROM current_qa_balance"))
    return sorted(
        t
        for t, v, f in store.query(SELECTION_TEMPLATES_SQL)
        if before.get(t) == (v, f) and modes.get(t) == "per_question"
    )


def _selection_fingerprint(studies: str, templates: dict[str, tuple[str, str]]) -> str:
    """What a selection and its baseline were made from (`qa_current_source`): the studies, the templates' parts of
    the rule, and the baseline's code (a build made before an edit of cxrvqa.core.prior gets the figures measured
    again)."""
    return stable_hash([studies, sorted(templates.items()), baseline_code_hash(), EVAL_BALANCE_VERSION])


def _prior_of(
    store: Store, changed: list[str], templates: dict[str, tuple[str, str]], before: dict[str, tuple[str, str]]
) -> list[PriorFigure] | None:
    """The baseline after a selection that replaced the keys of the ``changed`` templates only, the stored one made
    from the same studies and code: their items measured again, the other templates' stored figures kept
    (`combined`: the same figures). None (measure every item) where no figure is kept, or where a question text,
    normalised as the baseline reads it, is asked by a changed template (before or now) and by another one (any of
    their candidates, current or not): its majority answer mixes both. A copy of the 100k synthetic build, inside a
    transaction at the 512MB cap: 3.5 s whole (6.6-6.9 s with its train items sorted), 1.3 s for the largest
    template's items (11% of them, with the two queries of question texts), 0.24 s for a typical one's; since the
    items are read by their versions too (`CHANGED_ITEMS_SQL`), the largest template's measure 2.9-3.4 -> 0.5 s
    (outside a transaction, a copy with three edits' history)."""
    mine = _versions_of(changed, before, templates)
    others = [v for t, (v, _) in templates.items() if t not in changed]
    if not others:  # every template changed: nothing kept
        return None
    asked = {normalise(q) for (q,) in store.query(DISTINCT_QUESTIONS_SQL, [mine])}
    if any(normalise(q) in asked for (q,) in store.query(DISTINCT_QUESTIONS_SQL, [others])):
        return None
    measured = measure(store, CHANGED_ITEMS_SQL, [changed, _versions_of(changed, templates)])
    return combined([*measured, *(f for f in stored_prior(store) if f.template_id not in changed)])


def _versions_of(changed: list[str], *parts: dict[str, tuple[str, str]]) -> list[str]:
    """The versions of the ``changed`` templates in each of ``parts`` (template -> (version, fingerprint): the
    selection's before and now), in that order."""
    return [part[t][0] for part in parts for t in changed if t in part]


#: The current items of some templates, given their ids and current versions (`_prior_of`): the version, a key of the
#: items' join with `qa_current`, narrows that side too (100k synthetic studies, this read of the largest template's
#: items: 1.8 -> 0.25 s).
CHANGED_ITEMS_SQL = (
    "(SELECT * FROM current_qa_items WHERE list_contains(?, template_id) AND list_contains(?, template_version))"
)
#: The question texts of the items (candidates) of some template versions.
DISTINCT_QUESTIONS_SQL = "SELECT DISTINCT question FROM qa_items WHERE list_contains(?, template_version)"


def _select(
    store: Store, studies: str, templates: dict[str, tuple[str, str]], before: dict[str, tuple[str, str]]
) -> list[str] | None:
    """`qa_current` for what the rule reads now (``before``: the templates' parts at the last selection). Where the
    studies are as at the last selection, only the keys of the templates whose part changed are replaced (the rule
    and pairs over theirs alone: a template edit costs its own items), unless an item of another template asks one
    of their questions; else every key. Returns the templates whose keys were replaced (None: all)."""
    if before and store.query("SELECT studies FROM qa_current_source") == [(studies,)]:
        changed = sorted(t for t in templates.keys() | before.keys() if templates.get(t) != before.get(t))
        versions, both = _versions_of(changed, before), _versions_of(changed, before, templates)
        if not store.query(SHARED_QUESTIONS_SQL, [changed, both])[0][0]:
            store.con.execute("DELETE FROM qa_current WHERE list_contains(?, template_version)", [versions])
            _insert_current(store, changed)
            return changed
    store.con.execute("DELETE FROM qa_current")
    _insert_current(store, None)
    return None


def _insert_current(store: Store, templates: list[str] | None) -> None:
    """`qa_current`'s rows of these templates (None: all). The candidates stay the probe side of the rule's joins
    with the balance tables: inside the balance's transaction the new balance rows have no statistics, and DuckDB's
    choice of build side made a LEFT JOIN a RIGHT JOIN with its hash table over the candidates (100k studies, the
    largest template rebuilt: out of memory at the 512MB cap; with the choice off the whole balance took 13.7 s)."""
    with store.optimizers_off("build_side_probe_side"):
        store.con.execute(f"INSERT INTO qa_current {CURRENT_SQL}", [templates])


#: Part of the fingerprint of `select_current`: a build stored before the evaluation profile's thresholds
#: existed (or computed by other rules) gets them on its next QA stage.
EVAL_BALANCE_VERSION = "eval-balance-1"


def eval_balance(
    store: Store, run_id: str, tolerance: float, now: datetime, templates: list[str] | None = None
) -> list[dict[str, Any]]:
    """The rows of `qa_eval_balance`: the evaluation profile's thresholds (`eval_thresholds`, view
    `current_qa_eval_items`) over every current item, stamped with the run; ``templates``: the only ones whose
    current items changed since the stored thresholds."""
    return [
        {"run_id": run_id, **row, "created_at": now} for row in eval_thresholds(store, tolerance, templates=templates)
    ]
