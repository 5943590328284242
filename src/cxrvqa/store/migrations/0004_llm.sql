-- The llm extraction backend: its response cache, every request it sent, and where the two
-- backends disagree.
-- cache_key = hash of (input_hash, prompt_hash, model, parameters). A validated answer (status 'ok')
-- or a terminal error (status 'error': refusal, client error, answers still invalid after every
-- attempt) is kept; transient errors (5xx, 429, timeouts, budget) are not, so a rerun retries them.
CREATE TABLE llm_cache (
    cache_key      VARCHAR PRIMARY KEY,
    study_id       VARCHAR NOT NULL,
    input_hash     VARCHAR NOT NULL,
    prompt_hash    VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,
    params_hash    VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,      -- ok | error
    response       VARCHAR,               -- the validated answer (ok) or the last raw answer (error)
    error          VARCHAR,
    attempts       INTEGER NOT NULL,
    run_id         VARCHAR NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE llm_calls (
    run_id             VARCHAR NOT NULL,
    study_id           VARCHAR NOT NULL,
    cache_key          VARCHAR NOT NULL,
    attempt            INTEGER NOT NULL,
    outcome            VARCHAR NOT NULL,  -- ok | invalid_response | truncated | refusal | rate_limited | server_error | timeout | connection_error | client_error
    http_status        INTEGER,
    seconds            DOUBLE NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    detail             VARCHAR,
    created_at         TIMESTAMPTZ NOT NULL
);

-- Per study and finding, where the rules and llm graphs disagree on presence or laterality
-- (a finding only one backend found counts, with NULL on the other side).
CREATE VIEW backend_agreement AS
WITH both_backends AS (
    SELECT study_id FROM current_scene_graphs GROUP BY study_id HAVING count(DISTINCT backend) = 2
), summary AS (
    SELECT study_id, backend, finding,
           CASE WHEN bool_or(presence = 'present') THEN 'present'
                WHEN bool_or(presence = 'uncertain') THEN 'uncertain' ELSE 'absent' END AS presence,
           string_agg(DISTINCT laterality, ',' ORDER BY laterality) AS laterality
    FROM current_observations WHERE finding IS NOT NULL AND study_id IN (SELECT study_id FROM both_backends)
    GROUP BY study_id, backend, finding
), rules AS (SELECT * FROM summary WHERE backend = 'rules'),
   llm AS (SELECT * FROM summary WHERE backend = 'llm')
SELECT coalesce(r.study_id, l.study_id) AS study_id, coalesce(r.finding, l.finding) AS finding,
       r.presence AS rules_presence, l.presence AS llm_presence,
       r.laterality AS rules_laterality, l.laterality AS llm_laterality,
       CASE WHEN r.presence IS DISTINCT FROM l.presence THEN 'presence' ELSE 'laterality' END AS disagreement
FROM rules r FULL OUTER JOIN llm l ON r.study_id = l.study_id AND r.finding = l.finding
WHERE r.presence IS DISTINCT FROM l.presence OR r.laterality IS DISTINCT FROM l.laterality;
