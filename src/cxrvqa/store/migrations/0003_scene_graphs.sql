-- The extraction stage (DESIGN.md: stage 3): one scene graph per study and backend, its
-- observations flattened for querying, and the studies whose extraction failed.
-- graph_id = hash of (study_id, backend, input_hash, extractor_version): a rerun with the same
-- report text, sentence rules and extractor finds its graph and skips the study.
CREATE TABLE scene_graphs (
    graph_id           VARCHAR PRIMARY KEY,
    study_id           VARCHAR NOT NULL,
    backend            VARCHAR NOT NULL,      -- rules | llm
    report_hash        VARCHAR NOT NULL,      -- the report (and parser_version) its sentences came from
    parser_version     VARCHAR NOT NULL,
    input_hash         VARCHAR NOT NULL,      -- hash of what extraction read: sentences, sections, indication
    extractor_version  VARCHAR NOT NULL,      -- rules: recipe + vocabulary/rules hash; llm: prompt hash + model + params
    quality            VARCHAR[] NOT NULL,    -- quality codes; [] = nothing to report
    n_observations     INTEGER NOT NULL,
    graph              JSON NOT NULL,         -- the SceneGraph (schemas/scene_graph.schema.json)
    run_id             VARCHAR NOT NULL,
    code_version       VARCHAR NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE observations (
    graph_id        VARCHAR NOT NULL,
    study_id        VARCHAR NOT NULL,
    backend         VARCHAR NOT NULL,
    obs_id          VARCHAR NOT NULL,
    name            VARCHAR NOT NULL,
    finding         VARCHAR,                   -- vocabulary id; NULL when unresolved
    unresolved_text VARCHAR,
    category        VARCHAR,
    laterality      VARCHAR,
    presence        VARCHAR NOT NULL,          -- present | absent | uncertain
    severity        VARCHAR,
    change          VARCHAR,
    modifiers       VARCHAR[] NOT NULL,
    parent_id       VARCHAR,
    from_report     BOOLEAN NOT NULL,
    derived_from    VARCHAR[] NOT NULL,
    PRIMARY KEY (graph_id, obs_id)
);

CREATE TABLE obs_regions (
    graph_id  VARCHAR NOT NULL,
    obs_id    VARCHAR NOT NULL,
    region    VARCHAR NOT NULL,
    PRIMARY KEY (graph_id, obs_id, region)
);

CREATE TABLE obs_sentences (
    graph_id     VARCHAR NOT NULL,
    obs_id       VARCHAR NOT NULL,
    sentence_id  INTEGER NOT NULL,
    start        INTEGER NOT NULL,             -- character span of the evidence in reports.text
    "end"        INTEGER NOT NULL
);

CREATE TABLE extraction_failures (
    study_id           VARCHAR NOT NULL,
    backend            VARCHAR NOT NULL,
    input_hash         VARCHAR NOT NULL,
    extractor_version  VARCHAR NOT NULL,
    reason             VARCHAR NOT NULL,      -- stable code, e.g. extractor_error, invalid_graph
    error              VARCHAR NOT NULL,
    attempts           INTEGER NOT NULL,
    raw_response       VARCHAR,               -- the last model output (llm backend)
    usage              JSON,
    run_id             VARCHAR NOT NULL,
    code_version       VARCHAR NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL
);

-- The current dataset: per study and backend, the graph of the current report, newest first.
CREATE VIEW current_scene_graphs AS
SELECT g.* FROM scene_graphs g
JOIN current_reports r USING (study_id, report_hash, parser_version)
QUALIFY row_number() OVER (PARTITION BY g.study_id, g.backend ORDER BY g.created_at DESC) = 1;

CREATE VIEW current_observations AS
SELECT o.* FROM observations o JOIN current_scene_graphs g USING (graph_id);

CREATE VIEW current_extraction_failures AS
SELECT f.* FROM extraction_failures f
WHERE NOT EXISTS (SELECT 1 FROM current_scene_graphs g
                  WHERE g.study_id = f.study_id AND g.backend = f.backend AND g.created_at > f.created_at)
QUALIFY row_number() OVER (PARTITION BY f.study_id, f.backend ORDER BY f.created_at DESC) = 1;
