-- Studies and images retired from the current dataset (issue 17, `build --prune`): a study whose report, or an
-- image whose file, a build's complete input no longer has. Nothing is deleted: the rows stay as history, and a
-- retired study's report (so its sentences, scene graphs and items) and a retired image (so its boxes and items)
-- leave the `current_*` views. A later build whose input has them again restores them (a `restored` row).
CREATE TABLE retirements (
    kind            VARCHAR NOT NULL,      -- study | image
    key             VARCHAR NOT NULL,      -- study_id | image_id
    action          VARCHAR NOT NULL,      -- retired | restored
    reason          VARCHAR NOT NULL,      -- absent_from_input | back_in_input
    detail          VARCHAR NOT NULL,      -- the input it was looked for in
    input_hash      VARCHAR NOT NULL,      -- of the report or image file retired or restored
    run_id          VARCHAR NOT NULL,
    code_version    VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- What is retired now: the latest row of each study or image, when it retired it.
CREATE VIEW current_retirements AS
SELECT * FROM retirements
QUALIFY row_number() OVER (PARTITION BY kind, key ORDER BY created_at DESC) = 1 AND action = 'retired';

CREATE OR REPLACE VIEW current_reports AS
SELECT * FROM reports
WHERE study_id NOT IN (SELECT key FROM current_retirements WHERE kind = 'study')
QUALIFY row_number() OVER (PARTITION BY study_id ORDER BY created_at DESC) = 1;

CREATE OR REPLACE VIEW current_images AS
SELECT * FROM images
WHERE image_id NOT IN (SELECT key FROM current_retirements WHERE kind = 'image')
QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY created_at DESC) = 1;

-- Whether a template's program answers with a list of findings (the audit charts the share of its items that
-- name one beside the yes/no templates' 'yes' share); NULL in runs before this column.
ALTER TABLE qa_templates ADD COLUMN lists BOOLEAN;
