-- Validation stores a row per check that failed, not per check run (issue 19): ~26 result rows per item, nearly all
-- 'ok', were most of the stage's writes and of the database. Which checks a validation ran is stored once per batch
-- (`validation_checks`, keyed by the validators version that names them); an item's passing checks are its latest
-- validation (`validation_done`) times those checks, less the rows it failed, written at the same time. The view
-- `current_validation_results` gives the same rows as before, so every reader (audit, status, judge, review,
-- dataset card) is unchanged. Rows of other writers (the LLM judge: a row per verdict, ok or not) are kept whole.
CREATE TABLE validation_checks (
    validators_version  VARCHAR NOT NULL,      -- validation_done.validators_version of the batch
    validator           VARCHAR NOT NULL,
    validator_version   INTEGER NOT NULL,
    strictness          VARCHAR NOT NULL,      -- warn | reject
    run_id              VARCHAR NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);

-- Existing builds: the checks each validators version ran, then their passing rows dropped.
INSERT INTO validation_checks
SELECT DISTINCT ON (validators_version, validator) validators_version, validator, validator_version, strictness,
       run_id, created_at
FROM validation_results v SEMI JOIN (SELECT DISTINCT validators_version FROM validation_done) d USING (validators_version)
ORDER BY validators_version, validator, created_at;

DELETE FROM validation_results v
WHERE status = 'ok' AND EXISTS (SELECT 1 FROM validation_checks k
                                WHERE k.validators_version = v.validators_version AND k.validator = v.validator);

CREATE OR REPLACE VIEW current_validation_results AS
WITH done AS (
    SELECT d.item_id, d.template_version, d.input_hash, d.validators_version, d.run_id, d.created_at
    FROM validation_done d SEMI JOIN qa_current c USING (item_id, template_version, input_hash)
    WHERE d.latest),
checks AS (
    SELECT DISTINCT validators_version, validator, validator_version, strictness FROM validation_checks),
stored AS (
    SELECT v.* EXCLUDE (latest) FROM validation_results v SEMI JOIN qa_current c
        USING (item_id, template_version, input_hash)
    WHERE v.latest)
-- each check of an item's latest validation: the row it failed with (written with that validation), else ok
(SELECT d.item_id, d.template_version, d.input_hash, k.validator, k.validator_version, k.strictness,
        coalesce(s.status, 'ok') AS status, s.reason, coalesce(s.detail, '') AS detail, d.validators_version,
        d.run_id, d.created_at
 FROM done d JOIN checks k USING (validators_version)
 LEFT JOIN stored s ON s.item_id = d.item_id AND s.template_version = d.template_version
     AND s.input_hash = d.input_hash AND s.validator = k.validator AND s.created_at = d.created_at)
UNION ALL BY NAME
-- rows of checks that are no validation's (the LLM judge)
(SELECT s.* FROM stored s ANTI JOIN checks k USING (validators_version, validator))
UNION ALL BY NAME
(SELECT item_id, template_version, input_hash, 'human_review' AS validator, 1 AS validator_version,
        CASE status WHEN 'ok' THEN 'reject' ELSE status END AS strictness, status, reason, detail,
        'human_review' AS validators_version, run_id, created_at
 FROM current_reviews);
