-- The validation stage (DESIGN.md: stage 5): one row per QA item x validator.
-- An item is done when validation_done has (item_id, template_version, input_hash, validators_version);
-- validators_version covers every validator's name, version and strictness.
CREATE TABLE validation_results (
    item_id             VARCHAR NOT NULL,
    template_version    VARCHAR NOT NULL,
    input_hash          VARCHAR NOT NULL,
    validator           VARCHAR NOT NULL,
    validator_version   INTEGER NOT NULL,
    strictness          VARCHAR NOT NULL,      -- warn | reject (ignored validators do not run)
    status              VARCHAR NOT NULL,      -- ok | warn | reject: a failure counts at its strictness
    reason              VARCHAR,               -- stable snake_case code when not ok
    detail              VARCHAR NOT NULL,
    validators_version  VARCHAR NOT NULL,
    run_id              VARCHAR NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE validation_done (
    item_id             VARCHAR NOT NULL,
    template_version    VARCHAR NOT NULL,
    input_hash          VARCHAR NOT NULL,
    validators_version  VARCHAR NOT NULL,
    status              VARCHAR NOT NULL,      -- the item's worst status: ok | warn | reject
    run_id              VARCHAR NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);

-- The latest validation of every current item, per validator.
CREATE VIEW current_validation_results AS
SELECT v.* FROM validation_results v
JOIN current_qa_items q USING (item_id, template_version, input_hash)
QUALIFY row_number() OVER (PARTITION BY v.item_id, v.template_version, v.input_hash, v.validator
                           ORDER BY v.created_at DESC) = 1;

CREATE VIEW current_validation AS
SELECT d.* FROM validation_done d
JOIN current_qa_items q USING (item_id, template_version, input_hash)
QUALIFY row_number() OVER (PARTITION BY d.item_id, d.template_version, d.input_hash ORDER BY d.created_at DESC) = 1;

-- Weakest-link grades (schemas/vocab/grades.yaml): integer codes, higher is better, with labels.
CREATE TABLE grade_levels (
    grade     INTEGER PRIMARY KEY,
    label     VARCHAR NOT NULL UNIQUE,             -- A++ .. D
    meaning   VARCHAR NOT NULL
);

CREATE TABLE qa_grades (
    item_id             VARCHAR NOT NULL,
    template_version    VARCHAR NOT NULL,
    input_hash          VARCHAR NOT NULL,
    grade               INTEGER NOT NULL,
    label               VARCHAR NOT NULL,
    weakest             VARCHAR NOT NULL,      -- the criterion that set the grade ('' when none capped it)
    grading_version     VARCHAR NOT NULL,      -- hash of grades.yaml
    validators_version  VARCHAR NOT NULL,
    run_id              VARCHAR NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);

CREATE VIEW current_qa_grades AS
SELECT g.* FROM qa_grades g
JOIN current_qa_items q USING (item_id, template_version, input_hash)
QUALIFY row_number() OVER (PARTITION BY g.item_id, g.template_version, g.input_hash ORDER BY g.created_at DESC) = 1;

-- Dataset-level checks of each validation run (positive share, multiple-choice letters, answers).
CREATE TABLE dataset_checks (
    run_id      VARCHAR NOT NULL,
    "check"     VARCHAR NOT NULL,             -- positive_share | mcq_letters | answer_distribution
    subject     VARCHAR NOT NULL,             -- a template id, or 'dataset'
    value       DOUBLE,
    expected    VARCHAR NOT NULL,
    ok          BOOLEAN NOT NULL,
    detail      VARCHAR NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
