-- The current dataset is selected again only for the templates whose part of the rule changed (issue 19): a rebuild
-- after a template edit re-ran the rule's de-duplication window and complementary pairs over every candidate (0.6 CPU
-- seconds at 10k studies, whatever the edit). The rule becomes a table macro over the candidates of the named
-- templates (NULL: all), the same balance and de-duplication as migration 0016's view, which stays the rule over
-- every template; the QA stage asks it for the changed templates only when no candidate of another template shares a
-- de-duplication key with theirs (cxrvqa.qa.stage.select_current).
CREATE OR REPLACE MACRO qa_rule(templates) AS TABLE
SELECT c.* FROM current_qa_candidates c
LEFT JOIN current_qa_balance b ON b.template_id = c.template_id AND b.template_version = c.template_version
LEFT JOIN current_qa_question_balance q ON b.mode = 'per_question' AND q.template_id = c.template_id
                                        AND q.template_version = c.template_version AND q.arguments = c.arguments
LEFT JOIN current_qa_choice_balance m ON b.mode = 'per_question' AND c.answer_format = 'multiple_choice'
                                      AND m.template_id = c.template_id AND m.template_version = c.template_version
                                      AND m.options = list_sort(c.options) AND m.answer = c.answer
WHERE (templates IS NULL OR list_contains(templates, c.template_id))
  AND ((c.polarity IS NULL AND (coalesce(b.mode, 'per_template') = 'per_template'
                                OR c.answer_format <> 'multiple_choice' OR c.sample_u < m.threshold))
       OR (coalesce(b.mode, 'per_template') = 'per_template'
           AND c.sample_u < CASE WHEN c.polarity THEN coalesce(b.positive_keep_rate, 1.0)
                                 ELSE coalesce(b.keep_rate, 1.0) END)
       OR (b.mode = 'per_question'
           AND c.sample_u < CASE WHEN c.polarity THEN q.positive_threshold ELSE q.negative_threshold END))
QUALIFY row_number() OVER (PARTITION BY coalesce(c.image_id, 'study:' || c.study_id), lower(c.question),
                                        c.answer_format = 'multiple_choice'
                           ORDER BY c.template_id, c.item_id) = 1;

CREATE OR REPLACE VIEW qa_current_rule AS SELECT * FROM qa_rule(NULL);

-- What the rule read for each template when `qa_current` was last stored (its version, balance, thresholds, pairs
-- and item count, as a digest), and of the studies (`qa_current_source.studies`: the inputs' row counts). Empty in a
-- build stored before: its next selection is whole.
CREATE TABLE qa_current_templates (
    template_id       VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    fingerprint       VARCHAR NOT NULL
);

ALTER TABLE qa_current_source ADD COLUMN studies VARCHAR;
