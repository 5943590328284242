-- Why an uncertain observation is not present (possible | probable | differential | borderline; NULL
-- otherwise): the graph keeps what the radiologist committed to, and the labels14 export applies its
-- own documented policy to each kind of uncertainty. Rows written before this migration are NULL.
ALTER TABLE observations ADD COLUMN certainty VARCHAR;
CREATE OR REPLACE VIEW current_observations AS
SELECT o.* FROM observations o JOIN current_scene_graphs g USING (graph_id);
