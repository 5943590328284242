-- A study's QA input is keyed by its scene graph's content (plus patient, images, boxes), no longer by
-- the graph's id, which also covers the extractor version: an extractor change (edited rules,
-- vocabulary or prompt) that gives a study the same graph keeps its items, which are neither generated
-- nor validated again; only studies whose graph changed are. Items keep the id of the graph they were
-- made from (provenance); they are current while their input hash is the study's current one.
CREATE OR REPLACE VIEW current_qa_candidates AS
SELECT q.* FROM qa_items q
JOIN current_qa_inputs i ON i.study_id = q.study_id AND i.input_hash = q.input_hash
JOIN current_qa_templates t ON t.template_id = q.template_id AND t.template_version = q.template_version
WHERE (q.study_id, q.backend) IN (SELECT study_id, backend FROM current_scene_graphs);
