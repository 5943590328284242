-- The rule's de-duplication (one item per image or image-less study and question) sorts only the candidates whose key
-- repeats (issue 19): the window over every balanced candidate sorted their image or study and question texts, and
-- spilled to disk under the build's 512MB cap at 100k studies, to remove 0.8% of them. A candidate whose key's hash is
-- unique has a unique key (equal keys have equal hashes), so it is kept as the window would keep it; the window runs
-- over those whose hash repeats, by the key itself. 100k synthetic studies, 1.94M balanced candidates, the whole
-- selection (`cxrvqa.qa.stage.CURRENT_SQL`) at the 512MB cap: 8.65-9.08 -> 6.63-6.94 s, the same 1,920,573 keys and
-- pairs (a digest of every row compared).
CREATE OR REPLACE MACRO qa_rule(templates) AS TABLE
WITH balanced AS (
    SELECT c.*, hash(coalesce(c.image_id, 'study:' || c.study_id), lower(c.question),
                     c.answer_format = 'multiple_choice') AS question_key
    FROM current_qa_candidates c
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
               AND c.sample_u < CASE WHEN c.polarity THEN q.positive_threshold ELSE q.negative_threshold END))),
repeated AS (SELECT question_key FROM balanced GROUP BY question_key HAVING count(*) > 1)
SELECT * EXCLUDE (question_key) FROM balanced ANTI JOIN repeated USING (question_key)
UNION ALL
SELECT * EXCLUDE (question_key) FROM balanced SEMI JOIN repeated USING (question_key)
QUALIFY row_number() OVER (PARTITION BY coalesce(image_id, 'study:' || study_id), lower(question),
                                        answer_format = 'multiple_choice'
                           ORDER BY template_id, item_id) = 1;

CREATE OR REPLACE VIEW qa_current_rule AS SELECT * FROM qa_rule(NULL);
