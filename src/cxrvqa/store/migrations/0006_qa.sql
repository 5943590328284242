-- The QA generation stage (DESIGN.md: stage 4). qa_items holds every candidate item; the views
-- select the current, balanced, de-duplicated dataset.
-- A (study, template) pair is done when qa_done has (study_id, input_hash, template_id,
-- template_version): input_hash covers the scene graph, the patient, the images and their boxes;
-- template_version covers the template file, the generator code and the vocabularies.
CREATE TABLE qa_items (
    item_id           VARCHAR NOT NULL,      -- keyed hash of (seed, template, study, image, arguments)
    template_id       VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    study_id          VARCHAR NOT NULL,
    patient_id        VARCHAR NOT NULL,
    image_id          VARCHAR,               -- NULL: the study has no current image
    view_plane        VARCHAR,
    question_type     VARCHAR NOT NULL,      -- where | what | is_there | how_many | which | yes_no
    strategy          VARCHAR NOT NULL,
    skill             VARCHAR,
    answer_format     VARCHAR NOT NULL,      -- yes_no | short | full_sentence | multi_part | multiple_choice | box
    question          VARCHAR NOT NULL,
    answer            VARCHAR NOT NULL,
    options           VARCHAR[],             -- multiple_choice: 4 options
    correct_option    VARCHAR,               -- multiple_choice: A | B | C | D
    findings          VARCHAR[] NOT NULL,    -- finding tags (vocabulary ids)
    regions           VARCHAR[] NOT NULL,    -- region tags
    boxes             STRUCT(label VARCHAR, x_min DOUBLE, y_min DOUBLE, x_max DOUBLE, y_max DOUBLE)[] NOT NULL,  -- PNG pixels
    evidence_ids      INTEGER[] NOT NULL,    -- sentence ids of the report the answer rests on
    arguments         VARCHAR NOT NULL,      -- JSON of the drawn arguments
    polarity          BOOLEAN,               -- yes/no answers: true = yes; NULL otherwise
    sample_u          DOUBLE NOT NULL,       -- uniform [0,1) from the item hash: balancing keeps negatives below keep_rate
    split             VARCHAR NOT NULL,      -- patient-level: train | val | test
    graph_id          VARCHAR NOT NULL,
    backend           VARCHAR NOT NULL,
    input_hash        VARCHAR NOT NULL,
    run_id            VARCHAR NOT NULL,
    code_version      VARCHAR NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE qa_answer_parts (
    item_id           VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    input_hash        VARCHAR NOT NULL,
    part_index        INTEGER NOT NULL,      -- 0 = main answer
    kind              VARCHAR NOT NULL,      -- main | detail | related
    text              VARCHAR NOT NULL,
    findings          VARCHAR[] NOT NULL,
    regions           VARCHAR[] NOT NULL
);

CREATE TABLE qa_done (
    study_id          VARCHAR NOT NULL,
    input_hash        VARCHAR NOT NULL,
    template_id       VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    n_items           INTEGER NOT NULL,
    run_id            VARCHAR NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);

-- The input each study had when QA was last generated for it.
CREATE TABLE qa_inputs (
    study_id          VARCHAR NOT NULL,
    input_hash        VARCHAR NOT NULL,
    graph_id          VARCHAR NOT NULL,
    run_id            VARCHAR NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);

-- The templates each QA run used (the current set is the latest run's).
CREATE TABLE qa_templates (
    run_id            VARCHAR NOT NULL,
    template_id       VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    source            VARCHAR NOT NULL,      -- builtin | the file it was loaded from
    definition        JSON NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, template_id)
);

-- Per run and template: yes/no counts and the share of each side kept to reach the target.
CREATE TABLE qa_balance (
    run_id            VARCHAR NOT NULL,
    template_id       VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    n_positive        BIGINT NOT NULL,
    n_negative        BIGINT NOT NULL,
    target_share      DOUBLE NOT NULL,
    keep_rate         DOUBLE NOT NULL,       -- 'no' candidates kept where sample_u < keep_rate
    positive_keep_rate DOUBLE NOT NULL,      -- 'yes' candidates kept where sample_u < positive_keep_rate
    n_positive_kept   BIGINT NOT NULL,
    n_negative_kept   BIGINT NOT NULL,
    achieved_share    DOUBLE,                -- kept positives / kept yes-no items; NULL without yes/no items
    created_at        TIMESTAMPTZ NOT NULL
);

-- No ART indexes on qa_items / qa_done: DuckDB keeps them in memory (they grew with the dataset)
-- and its hash joins, which every query here uses, do not need them.

CREATE VIEW current_qa_templates AS
SELECT * FROM qa_templates
WHERE run_id = (SELECT run_id FROM qa_templates ORDER BY created_at DESC LIMIT 1);

CREATE VIEW current_qa_inputs AS
SELECT * FROM qa_inputs
QUALIFY row_number() OVER (PARTITION BY study_id ORDER BY created_at DESC) = 1;

CREATE VIEW current_qa_balance AS
SELECT * FROM qa_balance
QUALIFY row_number() OVER (PARTITION BY template_id, template_version ORDER BY created_at DESC) = 1;

-- Every candidate of the current inputs and templates, before balancing and de-duplication.
CREATE VIEW current_qa_candidates AS
SELECT q.* FROM qa_items q
JOIN current_qa_inputs i ON i.study_id = q.study_id AND i.input_hash = q.input_hash AND i.graph_id = q.graph_id
JOIN current_qa_templates t ON t.template_id = q.template_id AND t.template_version = q.template_version
WHERE q.graph_id IN (SELECT graph_id FROM current_scene_graphs);

-- The dataset: balanced (the side of a yes/no template in excess kept below its keep rate), one
-- item per (image or image-less study, question), a multiple-choice question (it comes with its options)
-- apart from an open one: the first template by id wins a duplicate question.
CREATE VIEW current_qa_items AS
SELECT c.* FROM current_qa_candidates c
LEFT JOIN current_qa_balance b ON b.template_id = c.template_id AND b.template_version = c.template_version
WHERE c.polarity IS NULL
   OR c.sample_u < CASE WHEN c.polarity THEN coalesce(b.positive_keep_rate, 1.0) ELSE coalesce(b.keep_rate, 1.0) END
QUALIFY row_number() OVER (PARTITION BY coalesce(c.image_id, 'study:' || c.study_id), lower(c.question),
                                        c.answer_format = 'multiple_choice'
                           ORDER BY c.template_id, c.item_id) = 1;

CREATE VIEW current_qa_answer_parts AS
SELECT p.* FROM qa_answer_parts p
JOIN current_qa_items q ON q.item_id = p.item_id AND q.template_version = p.template_version
                       AND q.input_hash = p.input_hash;
