-- The evaluation profile balances a choice between two findings named in the question ("Which is present:
-- cardiomegaly or a pneumothorax?", a short answer) as it balances a multiple-choice question: per split, template
-- and pair of findings (their sorted ids), each finding kept as often as the other is the answer. Before, such items
-- were always in the profile and a question-only reader chose the commoner finding of the pair: 0.89 of them right
-- (issue 22). The item lists the present finding first (qa.programs.which_of_two_findings). The view also gives
-- each item's possible answers (`options`), which the thresholds (core.balance.eval_thresholds) read.
CREATE OR REPLACE VIEW current_qa_eval_keys AS
SELECT item_id, template_id, template_version, split, sample_u,
       CASE WHEN polarity IS NOT NULL THEN arguments ELSE list_sort(options)::VARCHAR END AS question,
       CASE WHEN polarity IS NOT NULL THEN CASE WHEN polarity THEN 'yes' ELSE 'no' END
            WHEN chooses_two THEN findings[1] ELSE answer END AS answer,
       options
FROM (SELECT * REPLACE (
          CASE WHEN polarity IS NOT NULL THEN ['no', 'yes']
               WHEN answer_format = 'multiple_choice' THEN list_sort(options)
               WHEN json_exists(arguments, '$.finding_b') THEN list_sort(findings) END AS options),
             polarity IS NULL AND answer_format <> 'multiple_choice' AND json_exists(arguments, '$.finding_b')
                 AS chooses_two
      FROM current_qa_items);
