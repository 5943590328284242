-- The optional LLM judge (validation stage): one row per judged item and judge version, failures
-- included. judge_version covers the prompt, the criteria file, the model and its parameters.
-- A judged item's verdict is also a validation_results row (validator 'llm_judge'), and its grade
-- becomes the lower of its rule-based grade (qa_grades.rule_grade) and the verdict's cap.
CREATE TABLE judge_results (
    item_id           VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    input_hash        VARCHAR NOT NULL,
    judge_version     VARCHAR NOT NULL,
    status            VARCHAR NOT NULL,      -- ok | failed
    verdict           VARCHAR,               -- ok: JSON {criterion: value}
    rationale         VARCHAR,
    grade             INTEGER,               -- ok: the cap of the weakest value (grade_levels code)
    weakest           VARCHAR,               -- ok: 'criterion=value' that set the cap ('' when none capped)
    reason            VARCHAR,               -- failed: llm_timeout | llm_invalid_response | ...
    error             VARCHAR,
    terminal          BOOLEAN NOT NULL,      -- failed for good (cached): a rerun does not ask again
    cache_key         VARCHAR NOT NULL,
    run_id            VARCHAR NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);

-- The latest verdict of every current item (any judge version).
CREATE VIEW current_judge_results AS
SELECT j.* FROM judge_results j
JOIN current_qa_items q USING (item_id, template_version, input_hash)
WHERE j.status = 'ok'
QUALIFY row_number() OVER (PARTITION BY j.item_id, j.template_version, j.input_hash ORDER BY j.created_at DESC) = 1;

-- The grade (and the criterion that set it) before any judge verdict.
ALTER TABLE qa_grades ADD COLUMN rule_grade INTEGER;
ALTER TABLE qa_grades ADD COLUMN rule_weakest VARCHAR;
UPDATE qa_grades SET rule_grade = grade, rule_weakest = weakest;
