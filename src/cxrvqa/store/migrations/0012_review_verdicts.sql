-- Human review (`cxrvqa review import`): one row per verdict a reviewer gave an item.
-- A verdict belongs to the item as the reviewer saw it: `item_version` hashes its image, question, options,
-- answer and answer parts, boxes, evidence and the report it is read against (macro current_item_versions).
-- A rebuild that regenerates the same item (a new template_version after an unrelated code change) keeps the
-- verdict; a changed question, answer, option, box, evidence or report text drops it: it must be reviewed again.
-- What a verdict counts as (status, reason, the grade it caps at) comes from schemas/vocab/grades.yaml (`review`)
-- when it is imported.
CREATE TABLE review_verdicts (
    item_id           VARCHAR NOT NULL,
    item_version      VARCHAR NOT NULL,      -- md5 of what the reviewer saw (current_item_versions)
    template_version  VARCHAR NOT NULL,      -- the item's key when the verdict was imported (provenance)
    input_hash        VARCHAR NOT NULL,
    reviewer          VARCHAR NOT NULL,
    verdict           VARCHAR NOT NULL,      -- correct | wrong | unsupported | bad_question
    grammar           BOOLEAN NOT NULL,      -- the question or answer has a grammar error
    note              VARCHAR NOT NULL,
    status            VARCHAR NOT NULL,      -- ok | warn | reject: the `human_review` result it gives
    reason            VARCHAR,               -- review_wrong | review_unsupported | review_bad_question | review_grammar
    grade             INTEGER,               -- the grade it caps the item at (grade_levels code); NULL: no cap
    label             VARCHAR,
    weakest           VARCHAR,               -- 'review:<verdict>' or 'review:grammar'; NULL: no cap
    source            VARCHAR NOT NULL,      -- file and line or record it was read from
    reviewed_at       TIMESTAMPTZ,           -- when the reviewer gave it, where the file says
    run_id            VARCHAR NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);

-- The version (content hash) of the current items with these ids. One definition, used by the sample, the
-- import and the views below; it reads only the given items (~30 ms for 300 of 110k items).
CREATE MACRO current_item_versions(ids) AS TABLE
WITH k AS (SELECT * FROM qa_current WHERE item_id IN (SELECT unnest(ids))),
parts AS (SELECT p.item_id, p.template_version, p.input_hash,
                 list({'kind': p.kind, 'text': p.text} ORDER BY p.part_index) AS parts
          FROM qa_answer_parts p SEMI JOIN k USING (item_id, template_version, input_hash) GROUP BY ALL)
SELECT q.study_id, q.item_id, q.template_version, q.input_hash,
       md5(to_json({'image_id': q.image_id, 'question': q.question, 'answer': q.answer, 'options': q.options,
                    'correct_option': q.correct_option, 'boxes': q.boxes, 'evidence_ids': q.evidence_ids,
                    'parts': p.parts, 'report': r.text})::VARCHAR) AS item_version
FROM qa_items q SEMI JOIN k USING (study_id, item_id, template_version, input_hash)
LEFT JOIN parts p USING (item_id, template_version, input_hash)
LEFT JOIN current_reports r USING (study_id);

-- Each reviewer's latest verdict on each current item, as the item is now (its current key); verdicts on
-- another version of the item are left out.
CREATE VIEW current_review_verdicts AS
SELECT v.template_version, v.input_hash, r.* EXCLUDE (template_version, input_hash),
       r.template_version AS reviewed_template_version, r.input_hash AS reviewed_input_hash
FROM review_verdicts r
JOIN current_item_versions((SELECT list(DISTINCT item_id) FROM review_verdicts)) v
  ON v.item_id = r.item_id AND v.item_version = r.item_version
QUALIFY row_number() OVER (PARTITION BY r.item_id, r.reviewer ORDER BY r.created_at DESC, r.source DESC) = 1;

-- Per reviewed current item: the reviewers' verdicts as one `human_review` result (the worst status, the reason
-- of the lowest cap) and the cap (the lowest of the reviewers').
CREATE VIEW current_reviews AS
SELECT item_id, template_version, input_hash,
       CASE max(CASE status WHEN 'reject' THEN 2 WHEN 'warn' THEN 1 ELSE 0 END)
            WHEN 2 THEN 'reject' WHEN 1 THEN 'warn' ELSE 'ok' END AS status,
       arg_min(reason, coalesce(grade, 1000000)) FILTER (reason IS NOT NULL) AS reason,
       min(grade) AS grade,
       arg_min(label, grade) FILTER (grade IS NOT NULL) AS label,
       arg_min(weakest, grade) FILTER (grade IS NOT NULL) AS weakest,
       string_agg(reviewer || ': ' || verdict || CASE WHEN grammar THEN ' (grammar error)' ELSE '' END
                  || CASE WHEN note <> '' THEN ' - ' || note ELSE '' END, '; ' ORDER BY reviewer) AS detail,
       count(*) AS reviewers, max(run_id) AS run_id, max(created_at) AS created_at
FROM current_review_verdicts GROUP BY item_id, template_version, input_hash;

-- Human review is a validator result of its own (`human_review`), derived from the verdicts above, so that it
-- follows the item through rebuilds exactly as its verdicts do.
CREATE OR REPLACE VIEW current_validation_results AS
(SELECT v.* FROM validation_results v SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
 QUALIFY row_number() OVER (PARTITION BY v.item_id, v.template_version, v.input_hash, v.validator
                            ORDER BY v.created_at DESC) = 1)
UNION ALL BY NAME
(SELECT item_id, template_version, input_hash, 'human_review' AS validator, 1 AS validator_version,
        CASE status WHEN 'ok' THEN 'reject' ELSE status END AS strictness, status, reason, detail,
        'human_review' AS validators_version, run_id, created_at
 FROM current_reviews);

-- The grade is capped by the reviews (weakest link): `grade`, `label` and `weakest` are after the reviews,
-- `review_free_grade` / `review_free_weakest` what the checks alone (validators, judge) gave.
CREATE OR REPLACE VIEW current_qa_grades AS
WITH latest AS (
    SELECT g.* FROM qa_grades g SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
    QUALIFY row_number() OVER (PARTITION BY g.item_id, g.template_version, g.input_hash
                               ORDER BY g.created_at DESC) = 1)
SELECT g.* REPLACE (CASE WHEN r.grade < g.grade THEN r.grade ELSE g.grade END AS grade,
                    CASE WHEN r.grade < g.grade THEN r.label ELSE g.label END AS label,
                    CASE WHEN r.grade < g.grade THEN r.weakest ELSE g.weakest END AS weakest),
       g.grade AS review_free_grade, g.weakest AS review_free_weakest
FROM latest g LEFT JOIN current_reviews r USING (item_id, template_version, input_hash);
