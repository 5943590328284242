-- The stored state the QA stage last recorded its inputs from, per backend (issue 19): the row count and newest
-- `created_at` of every table its inputs' hashes read, and of `qa_inputs` itself (`cxrvqa.qa.stage.record_inputs`).
-- A rebuild whose state is the same skips hashing every current graph again (100k synthetic studies: ~3.5 s).
CREATE TABLE qa_input_states (
    backend         VARCHAR NOT NULL,
    fingerprint     VARCHAR NOT NULL,
    run_id          VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
