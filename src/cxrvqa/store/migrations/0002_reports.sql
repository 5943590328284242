-- The report stage (DESIGN.md: stage 2): reports, their sections and sentences, rejects.
CREATE TABLE reports (
    study_id        VARCHAR NOT NULL,
    patient_id      VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,      -- file and record it came from
    source_format   VARCHAR NOT NULL,      -- iu | mimic | jsonl | csv
    text            VARCHAR NOT NULL,      -- normalised full text; sentence offsets refer to it
    indication      VARCHAR NOT NULL,      -- section bodies ('' when absent)
    comparison      VARCHAR NOT NULL,
    technique       VARCHAR NOT NULL,
    findings        VARCHAR NOT NULL,
    impression      VARCHAR NOT NULL,
    other           VARCHAR NOT NULL,
    n_sentences     INTEGER NOT NULL,
    report_hash     VARCHAR NOT NULL,      -- sha256 of text
    parser_version  VARCHAR NOT NULL,      -- hash of the section/sentence rules
    run_id          VARCHAR NOT NULL,
    input_hash      VARCHAR NOT NULL,      -- sha256 of study, patient and text
    code_version    VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (study_id, input_hash, parser_version)
);

CREATE TABLE sentences (
    study_id        VARCHAR NOT NULL,
    report_hash     VARCHAR NOT NULL,
    parser_version  VARCHAR NOT NULL,
    sentence_id     INTEGER NOT NULL,      -- 0-based, in text order
    section         VARCHAR NOT NULL,      -- indication | comparison | technique | findings | impression | other
    text            VARCHAR NOT NULL,
    start           INTEGER NOT NULL,      -- character offsets into reports.text
    "end"           INTEGER NOT NULL,
    deid_only       BOOLEAN NOT NULL,      -- nothing but XXXX / ___ placeholders: never a finding
    run_id          VARCHAR NOT NULL,
    PRIMARY KEY (study_id, report_hash, parser_version, sentence_id)
);

CREATE TABLE report_rejects (
    source          VARCHAR NOT NULL,
    study_id        VARCHAR,
    reason          VARCHAR NOT NULL,      -- invalid_record | unrecognised_path | empty_report | report_too_long | duplicate_study
    detail          VARCHAR NOT NULL,
    parser_version  VARCHAR NOT NULL,
    run_id          VARCHAR NOT NULL,
    input_hash      VARCHAR NOT NULL,      -- of the record (or of source + problem when it could not be parsed)
    code_version    VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- The current dataset: the newest report of each study and its sentences.
CREATE VIEW current_reports AS
SELECT * FROM reports
QUALIFY row_number() OVER (PARTITION BY study_id ORDER BY created_at DESC) = 1;

CREATE VIEW current_sentences AS
SELECT s.* FROM sentences s
JOIN current_reports r USING (study_id, report_hash, parser_version);
