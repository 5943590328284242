-- Run bookkeeping and the image stage (DESIGN.md: stage 1, provenance on every row).
CREATE TABLE runs (
    run_id          VARCHAR PRIMARY KEY,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,          -- running | completed | failed | interrupted
    error           VARCHAR,
    config          JSON NOT NULL,             -- resolved Config, secrets excluded
    code_version    VARCHAR NOT NULL
);

CREATE TABLE run_stages (
    run_id          VARCHAR NOT NULL,
    stage           VARCHAR NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,
    n_input         BIGINT DEFAULT 0,          -- items seen
    n_skipped       BIGINT DEFAULT 0,          -- already done with the same input hash + versions
    n_done          BIGINT DEFAULT 0,          -- produced a row in the stage's main table
    n_rejected      BIGINT DEFAULT 0,          -- produced a reject row with a reason
    seconds         DOUBLE,
    PRIMARY KEY (run_id, stage)
);

CREATE TABLE images (
    image_id            VARCHAR NOT NULL,      -- keyed hash of SOPInstanceUID
    recipe_version      VARCHAR NOT NULL,      -- hash of everything that shapes the PNG
    study_id            VARCHAR NOT NULL,      -- manifest study id, else keyed hash of StudyInstanceUID
    patient_id          VARCHAR NOT NULL,      -- manifest patient id, else keyed hash of PatientID
    series_id           VARCHAR,               -- keyed hash of SeriesInstanceUID
    source_path         VARCHAR NOT NULL,      -- relative to the images folder
    png_path            VARCHAR NOT NULL,      -- relative to the output folder
    modality            VARCHAR,
    body_part           VARCHAR,               -- normalised: CHEST, or '' when the header is empty
    view_position       VARCHAR NOT NULL,      -- PA | AP | LL | RL | LATERAL | unknown
    view_source         VARCHAR NOT NULL,      -- ViewPosition | PatientOrientation | description | none
    view_plane          VARCHAR NOT NULL,      -- frontal | lateral | unknown
    photometric         VARCHAR NOT NULL,
    inverted            BOOLEAN NOT NULL,      -- MONOCHROME1 / INVERSE rendered so bone is white
    bits_allocated      INTEGER,
    bits_stored         INTEGER,
    pixel_signed        BOOLEAN,
    transfer_syntax     VARCHAR,
    window_source       VARCHAR NOT NULL,      -- voi_lut_sequence | window | full_range | percentile | percentile_header_window_unusable | min_max
    window_center       DOUBLE,
    window_width        DOUBLE,
    decode_method       VARCHAR NOT NULL,      -- how pixels were decoded (reduced resolution or full)
    decode_reduction    INTEGER NOT NULL,      -- power-of-two factor the codec reduced by
    rows                INTEGER NOT NULL,
    cols                INTEGER NOT NULL,
    png_rows            INTEGER NOT NULL,
    png_cols            INTEGER NOT NULL,
    scale_x             DOUBLE NOT NULL,       -- png_cols / cols: multiply source x by this
    scale_y             DOUBLE NOT NULL,       -- png_rows / rows
    pixel_spacing_row   DOUBLE,                -- mm, source
    pixel_spacing_col   DOUBLE,
    png_spacing_row     DOUBLE,                -- mm per PNG pixel
    png_spacing_col     DOUBLE,
    spacing_source      VARCHAR,               -- PixelSpacing | ImagerPixelSpacing | none
    png_sha256          VARCHAR NOT NULL,
    run_id              VARCHAR NOT NULL,
    input_hash          VARCHAR NOT NULL,      -- sha256 of the source file
    code_version        VARCHAR NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (image_id, recipe_version)
);

CREATE TABLE image_rejects (
    source_path         VARCHAR NOT NULL,
    reason              VARCHAR NOT NULL,      -- stable code, see cxrvqa.imaging.RejectReason
    detail              VARCHAR NOT NULL,
    recipe_version      VARCHAR NOT NULL,
    run_id              VARCHAR NOT NULL,
    input_hash          VARCHAR,               -- NULL only when the file could not be read at all
    code_version        VARCHAR NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX images_input ON images (input_hash, recipe_version);
CREATE INDEX image_rejects_input ON image_rejects (input_hash, recipe_version);

-- The current dataset: the newest rendering of each image.
CREATE VIEW current_images AS
SELECT * FROM images
QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY created_at DESC) = 1;

-- Files whose latest outcome (under any recipe) is a reject.
CREATE VIEW current_image_rejects AS
SELECT source_path, reason, detail, recipe_version, run_id, input_hash, created_at
FROM (
    SELECT source_path, NULL AS reason, NULL AS detail, recipe_version, run_id, input_hash, created_at FROM images
    UNION ALL
    SELECT source_path, reason, detail, recipe_version, run_id, input_hash, created_at FROM image_rejects
)
QUALIFY row_number() OVER (PARTITION BY source_path ORDER BY created_at DESC) = 1 AND reason IS NOT NULL;
