-- The current scene graph of each study and backend picked by a window over the graphs' keys alone, then joined
-- back to its row by its id (issue 19): the window over `g.*` carried every graph's JSON (~4 KB) through its sort.
-- The study stays in the join, so a filter on it reaches both sides, and a batch's range of studies still reads
-- about its own rows. 100k synthetic studies, 512MB cap, the same rows: every current graph 3.2 -> 0.5 s; the QA
-- stage's inputs (the graphs' hashes, ten ranges of 10,000 studies) 3.8 -> 1.9 s; the graphs of twelve batches of
-- 8,000 studies for validation 3.7 -> 1.8 s, for generation 4.6 -> 2.5 s.
CREATE OR REPLACE VIEW current_scene_graphs AS
SELECT g.* FROM scene_graphs g
JOIN (
    SELECT g.graph_id, g.study_id FROM scene_graphs g
    JOIN current_reports r USING (study_id, report_hash, parser_version)
    QUALIFY row_number() OVER (PARTITION BY g.study_id, g.backend ORDER BY g.created_at DESC) = 1
) k USING (graph_id, study_id);
