-- Box annotations (issue 5, Boxes): imported from annotation files (VinDr / NIH CSV) by
-- cxrvqa.imaging.boxes.import_boxes. Coordinates are stored as written, in the space of the
-- annotated image (ref_cols x ref_rows); the view rescales them to the current PNG, so a
-- re-rendered image (another scale) keeps its boxes right without re-importing.
-- box_id = hash of (input_hash, source_line): a rerun of the same file finds its rows and skips them.
CREATE TABLE boxes (
    box_id          VARCHAR PRIMARY KEY,
    image_id        VARCHAR NOT NULL,          -- our pseudonymous image id (images.image_id)
    kind            VARCHAR NOT NULL,          -- finding | region
    label           VARCHAR NOT NULL,          -- finding id (findings.yaml) or region id (regions.yaml)
    class_name      VARCHAR NOT NULL,          -- as written in the annotation file
    x_min           DOUBLE NOT NULL,           -- in the annotated image's pixel space
    y_min           DOUBLE NOT NULL,
    x_max           DOUBLE NOT NULL,
    y_max           DOUBLE NOT NULL,
    ref_cols        INTEGER NOT NULL,          -- size of the image the coordinates refer to:
    ref_rows        INTEGER NOT NULL,          -- DICOM Columns/Rows, or given (1024x1024 for NIH PNGs)
    rater           VARCHAR,                   -- e.g. VinDr rad_id
    source_file     VARCHAR NOT NULL,
    source_line     INTEGER NOT NULL,          -- 1-based line in the file (header = line 1)
    input_hash      VARCHAR NOT NULL,          -- sha256 of the annotation file
    run_id          VARCHAR NOT NULL,
    code_version    VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE box_rejects (
    source_file     VARCHAR NOT NULL,
    source_line     INTEGER NOT NULL,
    reason          VARCHAR NOT NULL,          -- stable code, see cxrvqa.imaging.boxes.BoxReason
    detail          VARCHAR NOT NULL,
    input_hash      VARCHAR NOT NULL,
    run_id          VARCHAR NOT NULL,
    code_version    VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX boxes_input ON boxes (input_hash, source_line);
CREATE INDEX box_rejects_input ON box_rejects (input_hash, source_line);

-- Boxes of current images in PNG pixel coordinates.
CREATE VIEW current_boxes AS
SELECT b.box_id, b.image_id, i.study_id, b.kind, b.label, b.class_name,
       b.x_min * i.png_cols / b.ref_cols AS x_min,
       b.y_min * i.png_rows / b.ref_rows AS y_min,
       b.x_max * i.png_cols / b.ref_cols AS x_max,
       b.y_max * i.png_rows / b.ref_rows AS y_max,
       i.png_cols, i.png_rows, b.rater, b.source_file
FROM boxes b JOIN current_images i USING (image_id);

-- Annotation lines whose latest outcome is a reject: a line imported by a later run (say, once
-- its image was ingested) drops out; older rejects stay in box_rejects for comparison.
CREATE VIEW current_box_rejects AS
SELECT r.* FROM box_rejects r
WHERE NOT EXISTS (SELECT 1 FROM boxes b WHERE b.input_hash = r.input_hash AND b.source_line = r.source_line)
QUALIFY row_number() OVER (PARTITION BY r.input_hash, r.source_line ORDER BY r.created_at DESC) = 1;
