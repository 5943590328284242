-- A study's latest outcome decides whether it has a current report: a report edited into one the stage
-- rejects (emptied, too long) takes the study out of the dataset, as a study absent from the input would be
-- warned of, instead of leaving the previous text's items current. A record rejected as a second copy of a
-- study (duplicate_study) says nothing of the study's report and is left out of the comparison.
CREATE OR REPLACE VIEW current_reports AS
SELECT * EXCLUDE (rejected) FROM (
    SELECT *, false AS rejected FROM reports
    UNION ALL BY NAME
    SELECT study_id, created_at, true AS rejected FROM report_rejects
    WHERE study_id IS NOT NULL AND reason <> 'duplicate_study'
)
WHERE study_id NOT IN (SELECT key FROM current_retirements WHERE kind = 'study')
QUALIFY row_number() OVER (PARTITION BY study_id ORDER BY created_at DESC) = 1 AND NOT rejected;
