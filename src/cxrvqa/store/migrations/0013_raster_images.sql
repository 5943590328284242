-- JPEG and PNG inputs with their datasets' metadata files (issue 20).
ALTER TABLE images ADD COLUMN source_format VARCHAR;   -- dicom | jpeg | png (NULL: rendered before this column)
ALTER TABLE images ADD COLUMN id_source VARCHAR;       -- manifest:<layout> | dicom_uids | file_content
ALTER TABLE images ADD COLUMN source_split VARCHAR;    -- the dataset's official split (a manifest split file)
