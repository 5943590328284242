-- The independent reader's reading of each sentence it read (issue 19): the findings it names with their ConText
-- modifiers, locations and sides (cxrvqa.validation.readings), kept by the sentence's text and the reader's version
-- (the checks' version, the reader's code, spaCy's and medspaCy's versions). A rebuild that validates a template's
-- items again takes the readings of its studies' sentences from here instead of reading every sentence again with
-- spaCy and ConText in every worker process. A cache: a row is written once (a row whose key is there is ignored);
-- rows of another reader version are never read.
CREATE TABLE sentence_readings (
    reader_version  VARCHAR NOT NULL,
    text            VARCHAR NOT NULL,
    reading         VARCHAR NOT NULL,  -- JSON: [[finding, words, kinds, regions, sides], ...], sets sorted
    run_id          VARCHAR NOT NULL,
    PRIMARY KEY (reader_version, text)
);
