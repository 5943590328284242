-- What the reports stage last read of a complete reports input (no --limit): a fingerprint of its files'
-- paths, sizes, modification times (ns) and inodes with the stage's versions and --prune, the number of
-- records it held, the state of the stored reports, rejects and study retirements right after the stage, and
-- the warning the stage gave of current studies absent from the input. A rebuild whose input has the same
-- fingerprint while the stored state is unchanged reads nothing: every record is counted as skipped, as a
-- full read would find it, and the warning is given again. A file rewritten in place with the same size and
-- its modification time set back is not seen: `build --rehash` reads the whole input. A derived cache: one
-- row per complete read; builds made before this migration have none (their next build reads in full).
CREATE TABLE report_inputs (
    fingerprint   VARCHAR NOT NULL,      -- stable hash of the files' stats, format, parser and code versions, --prune
    n_input       BIGINT NOT NULL,       -- records read (reports and rejects): the stage's n_input
    store_state   VARCHAR NOT NULL,      -- stable hash of the counts and latest created_at of reports, rejects, retirements
    warning       VARCHAR,               -- the absent-studies warning of that read (NULL: none)
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
