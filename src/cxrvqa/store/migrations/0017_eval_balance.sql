-- The evaluation profile (`cxrvqa export --balance per-question`, issue 22) chosen by item-hash thresholds like
-- the build's balance (not by rank: a rank quota pulls another study's item in for every kept item that leaves,
-- so an edit to a few studies flipped items of other studies in every export). Per split, template and question
-- (yes/no: the arguments; multiple choice: the sorted options) and answer (yes/no: 'yes' | 'no'; multiple
-- choice: each option), the current items whose sample_u is below `threshold` are in the profile: as many of
-- each answer as the rarest has (0 when one never comes: the question keeps nothing). Written when the QA stage
-- selects the current dataset; a question keeps the previous thresholds while their shares stay within
-- qa.balance_tolerance of an even split (basis new | kept | rebalanced, as qa_question_balance).
CREATE TABLE qa_eval_balance (
    run_id            VARCHAR NOT NULL,
    template_id       VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    split             VARCHAR NOT NULL,
    question          VARCHAR NOT NULL,      -- yes/no: the arguments JSON; multiple choice: the sorted options
    answer            VARCHAR NOT NULL,      -- yes/no: yes | no; multiple choice: one of the options
    n_items           BIGINT NOT NULL,       -- current items of this answer
    n_kept            BIGINT NOT NULL,
    threshold         DOUBLE NOT NULL,       -- items with sample_u below it are in the profile
    basis             VARCHAR NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE VIEW current_qa_eval_balance AS
SELECT * FROM qa_eval_balance
WHERE run_id = (SELECT run_id FROM qa_eval_balance ORDER BY created_at DESC LIMIT 1);

-- The keys an item is balanced under in the profile (NULL question: an item of another format, always in it).
CREATE VIEW current_qa_eval_keys AS
SELECT item_id, template_id, template_version, split, sample_u,
       CASE WHEN polarity IS NOT NULL THEN arguments
            WHEN answer_format = 'multiple_choice' THEN list_sort(options)::VARCHAR END AS question,
       CASE WHEN polarity IS NOT NULL THEN CASE WHEN polarity THEN 'yes' ELSE 'no' END ELSE answer END AS answer
FROM current_qa_items;

-- The current items in the evaluation profile.
CREATE VIEW current_qa_eval_items AS
SELECT k.item_id FROM current_qa_eval_keys k
LEFT JOIN current_qa_eval_balance b USING (template_id, template_version, split, question, answer)
WHERE k.question IS NULL OR k.sample_u < b.threshold;
