-- Each import of an annotation file, also one that found every line imported before: the current boxes are those
-- of each file's latest import. Before, every box ever imported was current, so a file edited (a box corrected,
-- one added) gave every image its boxes twice and kept the wrong one, and a file edited back (A, B, A) kept B's
-- boxes beside A's.
CREATE TABLE box_imports (
    source_file     VARCHAR NOT NULL,          -- as given (the boxes' source_file)
    input_hash      VARCHAR NOT NULL,          -- sha256 of the file as imported
    run_id          VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- Builds made before: each version of a file that left boxes or rejects, at the time of its first row.
INSERT INTO box_imports
SELECT source_file, input_hash, arg_min(run_id, created_at), min(created_at) FROM (
    SELECT source_file, input_hash, run_id, created_at FROM boxes
    UNION ALL SELECT source_file, input_hash, run_id, created_at FROM box_rejects
) GROUP BY source_file, input_hash;

CREATE OR REPLACE VIEW current_boxes AS
SELECT b.box_id, b.image_id, i.study_id, b.kind, b.label, b.class_name,
       b.x_min * i.png_cols / b.ref_cols AS x_min,
       b.y_min * i.png_rows / b.ref_rows AS y_min,
       b.x_max * i.png_cols / b.ref_cols AS x_max,
       b.y_max * i.png_rows / b.ref_rows AS y_max,
       i.png_cols, i.png_rows, b.rater, b.source_file
FROM boxes b
SEMI JOIN (SELECT source_file, arg_max(input_hash, created_at) AS input_hash FROM box_imports GROUP BY source_file) f
    USING (source_file, input_hash)
JOIN current_images i USING (image_id);
