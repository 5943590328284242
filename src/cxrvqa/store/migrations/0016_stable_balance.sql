-- Stable balancing (issues 17 and 22): an edit to a few studies must not flip items of other studies. A
-- question's kept items are those whose sample_u is below its side's threshold (not the n lowest: a rank
-- quota pulls another study's item in for every kept item that leaves), and a balance keeps the previous
-- balance's thresholds (per_question) or keep rates (per_template) while the share they give stays within
-- qa.balance_tolerance of the target; only a question or template that leaves it is balanced again.

-- per_question: a side's candidates with sample_u below its threshold are kept (1.0: all, 0.0: none).
-- basis: new (no earlier balance of this question and template version), kept (the previous balance's
-- thresholds, their share within the tolerance) or rebalanced (the previous thresholds left it: items of other
-- studies may have changed).
ALTER TABLE qa_question_balance ADD COLUMN positive_threshold DOUBLE;
ALTER TABLE qa_question_balance ADD COLUMN negative_threshold DOUBLE;
ALTER TABLE qa_question_balance ADD COLUMN basis VARCHAR;
-- per_template: the same for the template's keep rates.
ALTER TABLE qa_balance ADD COLUMN basis VARCHAR;

-- Multiple choice balanced per question (issue 22: the options gave the answer away, a reader of the options
-- alone answered 0.91 of IU dev's held-out items): per template and set of options (sorted), every option is
-- the answer of as many kept items as the rarest, the candidates below the option's threshold; a set of
-- options one of which is never the answer keeps nothing (its rows say so: n_items 0).
CREATE TABLE qa_choice_balance (
    run_id            VARCHAR NOT NULL,
    template_id       VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    options           VARCHAR[] NOT NULL,    -- the question's options, sorted
    answer            VARCHAR NOT NULL,      -- one of them
    n_items           BIGINT NOT NULL,       -- candidates whose answer it is
    n_kept            BIGINT NOT NULL,
    threshold         DOUBLE NOT NULL,       -- those with sample_u below it are kept
    basis             VARCHAR NOT NULL,      -- new | kept | rebalanced (as qa_question_balance)
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE VIEW current_qa_choice_balance AS
SELECT * FROM qa_choice_balance
WHERE run_id = (SELECT run_id FROM qa_balance ORDER BY created_at DESC LIMIT 1);

CREATE OR REPLACE VIEW qa_current_rule AS
SELECT c.* FROM current_qa_candidates c
LEFT JOIN current_qa_balance b ON b.template_id = c.template_id AND b.template_version = c.template_version
LEFT JOIN current_qa_question_balance q ON b.mode = 'per_question' AND q.template_id = c.template_id
                                        AND q.template_version = c.template_version AND q.arguments = c.arguments
LEFT JOIN current_qa_choice_balance m ON b.mode = 'per_question' AND c.answer_format = 'multiple_choice'
                                      AND m.template_id = c.template_id AND m.template_version = c.template_version
                                      AND m.options = list_sort(c.options) AND m.answer = c.answer
WHERE (c.polarity IS NULL AND (coalesce(b.mode, 'per_template') = 'per_template'
                               OR c.answer_format <> 'multiple_choice' OR c.sample_u < m.threshold))
   OR (coalesce(b.mode, 'per_template') = 'per_template'
       AND c.sample_u < CASE WHEN c.polarity THEN coalesce(b.positive_keep_rate, 1.0) ELSE coalesce(b.keep_rate, 1.0) END)
   OR (b.mode = 'per_question'
       AND c.sample_u < CASE WHEN c.polarity THEN q.positive_threshold ELSE q.negative_threshold END)
QUALIFY row_number() OVER (PARTITION BY coalesce(c.image_id, 'study:' || c.study_id), lower(c.question),
                                        c.answer_format = 'multiple_choice'
                           ORDER BY c.template_id, c.item_id) = 1;
