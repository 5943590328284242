-- What the image stage last saw of each input file: its size, modification time (ns) and inode with the
-- sha256 it hashed then. A rebuild hashes a file only when one of the three differs from the row of its path
-- (or the path has none), and takes the stored hash otherwise: a no-change rebuild then reads no DICOM.
-- A file rewritten in place with the same size and its mtime set back is not seen: `build --rehash` hashes
-- every file. A derived cache, not provenance: one row per path (replaced when a file is hashed again), no
-- run_id. Builds made before this migration have no rows: their files are hashed once more, then recorded.
CREATE TABLE image_files (
    source_path   VARCHAR NOT NULL,      -- as stored in images / image_rejects (identifiers pseudonymised)
    size          BIGINT NOT NULL,       -- st_size
    mtime_ns      BIGINT NOT NULL,       -- st_mtime_ns
    inode         BIGINT NOT NULL,       -- st_ino: a file renamed over another is hashed again
    input_hash    VARCHAR NOT NULL,      -- sha256 of the bytes (the input_hash of its images / image_rejects row)
    created_at    TIMESTAMPTZ NOT NULL   -- when it was hashed
);
