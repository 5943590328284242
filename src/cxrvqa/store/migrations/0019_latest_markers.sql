-- The current validation results, done rows, grades and judge verdicts are each key's latest row. The views
-- found it with a window over the whole history (every result of every run sorted by key and time on each
-- read: the largest cost of `status`, `audit` and the judge's selection at scale). Each row now carries
-- `latest`, kept at write time (cxrvqa.store.latest, Store.insert): a new row of a key demotes the previous
-- one. The views become filters; `audit --run X` recomputes the marker over the rows up to run X.
ALTER TABLE validation_results ADD COLUMN latest BOOLEAN DEFAULT false;
ALTER TABLE validation_done ADD COLUMN latest BOOLEAN DEFAULT false;
ALTER TABLE qa_grades ADD COLUMN latest BOOLEAN DEFAULT false;
ALTER TABLE judge_results ADD COLUMN latest BOOLEAN DEFAULT false;

-- Existing builds: the rows the windows selected (ties on created_at broken as the window happens to; a batch
-- writes one row per key, so there are none).
UPDATE validation_results t SET latest = true FROM (
    SELECT rowid AS r FROM validation_results
    QUALIFY row_number() OVER (PARTITION BY item_id, template_version, input_hash, validator
                               ORDER BY created_at DESC) = 1) w
WHERE t.rowid = w.r;
UPDATE validation_done t SET latest = true FROM (
    SELECT rowid AS r FROM validation_done
    QUALIFY row_number() OVER (PARTITION BY item_id, template_version, input_hash ORDER BY created_at DESC) = 1) w
WHERE t.rowid = w.r;
UPDATE qa_grades t SET latest = true FROM (
    SELECT rowid AS r FROM qa_grades
    QUALIFY row_number() OVER (PARTITION BY item_id, template_version, input_hash ORDER BY created_at DESC) = 1) w
WHERE t.rowid = w.r;
UPDATE judge_results t SET latest = true FROM (
    SELECT rowid AS r FROM judge_results WHERE status = 'ok'
    QUALIFY row_number() OVER (PARTITION BY item_id, template_version, input_hash ORDER BY created_at DESC) = 1) w
WHERE t.rowid = w.r;

-- The views: the same columns as before (the marker left out), the same rows, no window.
CREATE OR REPLACE VIEW current_validation_results AS
(SELECT v.* EXCLUDE (latest) FROM validation_results v SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
 WHERE v.latest)
UNION ALL BY NAME
(SELECT item_id, template_version, input_hash, 'human_review' AS validator, 1 AS validator_version,
        CASE status WHEN 'ok' THEN 'reject' ELSE status END AS strictness, status, reason, detail,
        'human_review' AS validators_version, run_id, created_at
 FROM current_reviews);

CREATE OR REPLACE VIEW current_validation AS
SELECT d.* EXCLUDE (latest) FROM validation_done d SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
WHERE d.latest;

CREATE OR REPLACE VIEW current_qa_grades AS
WITH latest AS (
    SELECT g.* EXCLUDE (latest) FROM qa_grades g SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
    WHERE g.latest)
SELECT g.* REPLACE (CASE WHEN r.grade < g.grade THEN r.grade ELSE g.grade END AS grade,
                    CASE WHEN r.grade < g.grade THEN r.label ELSE g.label END AS label,
                    CASE WHEN r.grade < g.grade THEN r.weakest ELSE g.weakest END AS weakest),
       g.grade AS review_free_grade, g.weakest AS review_free_weakest
FROM latest g LEFT JOIN current_reviews r USING (item_id, template_version, input_hash);

CREATE OR REPLACE VIEW current_judge_results AS
SELECT j.* EXCLUDE (latest) FROM judge_results j SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
WHERE j.latest;
