-- The current items joined with their keys by item, template version and input, without the study (issue 19): an
-- item's id is a hash of its template, study, image and arguments, so the study adds nothing to the match, but its
-- column made the join's hash table over every current key too large for the build's 512MB cap at 100k studies,
-- and the join spilled to disk. 100k synthetic studies, 2.16M current items of 6.25M: the evaluation profile's
-- keys grouped by question 5.2 -> 1.4-1.6 s (spilled 764 -> 0 MB), the question-only baseline 6.6 -> 5.2 s; the
-- same rows.
CREATE OR REPLACE VIEW current_qa_items AS
SELECT q.*, c.pair_id FROM qa_items q JOIN qa_current c USING (item_id, template_version, input_hash);
