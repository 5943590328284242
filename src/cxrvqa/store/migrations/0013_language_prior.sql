-- The language prior (issue 22): balance per question, complementary pairs, the question-only baseline.

-- How the run balanced: per_template (a keep rate per side of each yes/no template) or per_question (quotas
-- per template and arguments in qa_question_balance; the template's keep rates are then 1).
ALTER TABLE qa_balance ADD COLUMN mode VARCHAR DEFAULT 'per_template';

-- Per run, template and arguments (one question, e.g. one finding): its yes/no candidates and how many of
-- each side the dataset keeps (those with the lowest sample_u). A question without one of the answers keeps
-- nothing: its rows say which answer was missing, rather than padding.
CREATE TABLE qa_question_balance (
    run_id            VARCHAR NOT NULL,
    template_id       VARCHAR NOT NULL,
    template_version  VARCHAR NOT NULL,
    arguments         VARCHAR NOT NULL,
    n_positive        BIGINT NOT NULL,
    n_negative        BIGINT NOT NULL,
    target_share      DOUBLE NOT NULL,
    n_positive_kept   BIGINT NOT NULL,       -- 'yes' candidates kept: the n with the lowest sample_u
    n_negative_kept   BIGINT NOT NULL,
    missing           VARCHAR,               -- yes | no: the answer this question never got (nothing kept); NULL
    created_at        TIMESTAMPTZ NOT NULL
);

-- The quotas of the latest balance (a per_template balance writes none, so its run has no quotas).
CREATE VIEW current_qa_question_balance AS
SELECT * FROM qa_question_balance
WHERE run_id = (SELECT run_id FROM qa_balance ORDER BY created_at DESC LIMIT 1);

-- The dataset: a yes/no candidate of a question with quotas is kept when it is among the n of its side with
-- the lowest sample_u; of a template without quotas, below its side's keep rate; then one item per (image or
-- image-less study, question), as before.
CREATE OR REPLACE VIEW qa_current_rule AS
WITH ranked AS (
    SELECT c.*, row_number() OVER (PARTITION BY c.template_id, c.template_version, c.arguments, c.polarity
                                   ORDER BY c.sample_u, c.item_id) AS question_rank
    FROM current_qa_candidates c WHERE c.polarity IS NOT NULL)
SELECT c.* FROM current_qa_candidates c
LEFT JOIN current_qa_balance b ON b.template_id = c.template_id AND b.template_version = c.template_version
WHERE c.polarity IS NULL
   OR (coalesce(b.mode, 'per_template') = 'per_template'
       AND c.sample_u < CASE WHEN c.polarity THEN coalesce(b.positive_keep_rate, 1.0) ELSE coalesce(b.keep_rate, 1.0) END)
   OR (b.mode = 'per_question' AND c.item_id IN (
       SELECT r.item_id FROM ranked r JOIN current_qa_question_balance q
           ON q.template_id = r.template_id AND q.template_version = r.template_version AND q.arguments = r.arguments
       WHERE r.question_rank <= CASE WHEN r.polarity THEN q.n_positive_kept ELSE q.n_negative_kept END))
QUALIFY row_number() OVER (PARTITION BY coalesce(c.image_id, 'study:' || c.study_id), lower(c.question),
                                        c.answer_format = 'multiple_choice'
                           ORDER BY c.template_id, c.item_id) = 1;

-- Complementary pairs: a current 'yes' item and a current 'no' item of the same question, view plane and split
-- (templates with complementary_pairs), matched by their rank in sample_u order; NULL for other items.
ALTER TABLE qa_current ADD COLUMN pair_id VARCHAR;

CREATE OR REPLACE VIEW current_qa_items AS
SELECT q.*, c.pair_id FROM qa_items q JOIN qa_current c USING (study_id, item_id, template_version, input_hash);

-- The question-only baseline of the current dataset (a model that sees the question only and answers the
-- majority answer of its key in the train split), on the held-out items (every split but train), per answer
-- format (template_id NULL) and per template; written by the QA stage when it selects the dataset.
CREATE TABLE qa_prior (
    run_id            VARCHAR NOT NULL,
    key               VARCHAR NOT NULL,      -- question (normalised text) | arguments (template + visible
                                             -- arguments) | options (question text, choosing among the options)
    answer_format     VARCHAR NOT NULL,
    template_id       VARCHAR,               -- NULL: the whole answer format
    n_items           BIGINT NOT NULL,       -- held-out items
    accuracy          DOUBLE NOT NULL,
    chance            DOUBLE,                -- 1/2 yes/no, 1/4 multiple choice; NULL for open answers
    worst             JSON NOT NULL,         -- [[arguments, items, accuracy]] the most predictable questions first
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE VIEW current_qa_prior AS
SELECT * FROM qa_prior WHERE run_id = (SELECT run_id FROM qa_prior ORDER BY created_at DESC LIMIT 1);
