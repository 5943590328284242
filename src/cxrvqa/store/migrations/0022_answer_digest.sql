-- An item records the digest of what its answer program decided (question, answer, options, correct option,
-- findings, regions) when the QA stage made it (issue 19). Its template version (the template, the generator's code,
-- the vocabularies, the seed) and input hash (the graph) fix what the program makes, so a row whose fields still
-- have that digest is the program's output: the `answer_program` check regenerates only the items whose digest
-- differs (edited after generation) or is missing (rows made before this migration), not every item of a build.
ALTER TABLE qa_items ADD COLUMN answer_digest VARCHAR;
