-- JPEG and PNG inputs with their datasets' metadata files (issue 20).
ALTER TABLE images ADD COLUMN source_format VARCHAR;   -- dicom | jpeg | png (NULL: rendered before this column)
ALTER TABLE images ADD COLUMN id_source VARCHAR;       -- manifest:<layout> | dicom_uids | file_content
ALTER TABLE images ADD COLUMN source_split VARCHAR;    -- the dataset's official split (a manifest split file)

-- Current images that the build's metadata files do not name (reason not_in_manifest): converted in a run
-- given --manifest, yet with ids of their own (DICOM UIDs or file content), so no report links to them.
CREATE VIEW image_manifest_gaps AS
SELECT i.source_path, 'not_in_manifest' AS reason,
       'no --manifest row names this file; its ids come from ' || i.id_source AS detail
FROM current_images i JOIN runs r USING (run_id)
WHERE i.id_source IN ('dicom_uids', 'file_content')
  AND coalesce(r.config->>'manifest', 'null') NOT IN ('null', '[]');
