-- The current dataset's membership is kept in a table, refreshed by the QA stage after balancing, instead
-- of being re-derived by every query: the rule (candidates of the current inputs and templates, balanced,
-- de-duplicated by a window over every candidate) cost 0.4-1.4 s per query at 10k studies, and the
-- validation stage, dataset checks, judge, status and exports asked it again and again (once per batch:
-- quadratic in the build). The rule stays as the view `qa_current_rule` (also what `audit --run` reads for
-- an earlier run); `qa_current` holds its keys as of the last QA stage. No run_id column: it is derived,
-- the same for any run that reads it, and rebuilt whole.
ALTER VIEW current_qa_items RENAME TO qa_current_rule;

CREATE TABLE qa_current (
    study_id          VARCHAR NOT NULL,
    item_id           VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    input_hash        VARCHAR NOT NULL
);

-- ordered by study: a batch's range of studies then reads a few row groups of it (and of qa_items)
INSERT INTO qa_current
SELECT study_id, item_id, template_version, input_hash FROM qa_current_rule ORDER BY study_id, item_id;

-- A fingerprint of what the rule read when qa_current was last stored: the QA stage leaves qa_current as it
-- is while the fingerprint holds (a rebuild that changed nothing).
CREATE TABLE qa_current_source (
    fingerprint       VARCHAR NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE VIEW current_qa_items AS
SELECT q.* FROM qa_items q SEMI JOIN qa_current c USING (study_id, item_id, template_version, input_hash);

-- The views over the current items join the keys (four columns) rather than the items (every column).
CREATE OR REPLACE VIEW current_qa_answer_parts AS
SELECT p.* FROM qa_answer_parts p SEMI JOIN qa_current c USING (item_id, template_version, input_hash);

CREATE OR REPLACE VIEW current_validation_results AS
SELECT v.* FROM validation_results v SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
QUALIFY row_number() OVER (PARTITION BY v.item_id, v.template_version, v.input_hash, v.validator
                           ORDER BY v.created_at DESC) = 1;

CREATE OR REPLACE VIEW current_validation AS
SELECT d.* FROM validation_done d SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
QUALIFY row_number() OVER (PARTITION BY d.item_id, d.template_version, d.input_hash ORDER BY d.created_at DESC) = 1;

CREATE OR REPLACE VIEW current_qa_grades AS
SELECT g.* FROM qa_grades g SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
QUALIFY row_number() OVER (PARTITION BY g.item_id, g.template_version, g.input_hash ORDER BY g.created_at DESC) = 1;

CREATE OR REPLACE VIEW current_judge_results AS
SELECT j.* FROM judge_results j SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
WHERE j.status = 'ok'
QUALIFY row_number() OVER (PARTITION BY j.item_id, j.template_version, j.input_hash ORDER BY j.created_at DESC) = 1;

-- A validation batch checks which of its studies' items are done by a range of studies: with the study on
-- the done rows (written in study order), that reads a few row groups instead of every done row.
ALTER TABLE validation_done ADD COLUMN study_id VARCHAR;
UPDATE validation_done d SET study_id = q.study_id
FROM (SELECT DISTINCT item_id, study_id FROM qa_items) q WHERE d.item_id = q.item_id;
