"""The independent reader's readings of single sentences, kept in the store (`sentence_readings`, migration 0027).

`independent.read_sentence` reads a sentence with spaCy and ConText once per process (an LRU cache). A rebuild after
a template edit validates that template's items of almost every study, in fresh worker processes, so each worker
read its studies' every sentence again and loaded spaCy and medspaCy to do it (10k synthetic studies: 1.8 of 4.7 CPU
seconds of the largest template's revalidation in one process, and ~1.3 s of start-up per worker). Now the flow's
process loads the kept readings of a batch's studies' sentences (`load`), each chunk of studies takes them to its
worker (`use`), the reader takes a kept reading before it reads (`kept`), and the readings it did make come back as
rows to keep (`made`). A kept reading counts only for the same reader version (`reader_version`): the checks' version
(their rules file and vocabularies), the source of the reader's module and of this one as loaded, spaCy's and medspaCy's
versions; any change of these reads every sentence again. Where the QA stage ran on a local pool (4,000 pending
studies or more) before a validation, the current sentences with no kept reading are read by the pool's workers
while the flow's process balances the QA items (`read_afresh`; `cxrvqa.validation.stage.read_ahead`), so a first
build's validation takes them kept too (a change of the reader alone, with no QA work, still reads them in the
validation). Only the sentences of the studies' reports are loaded:
the sentences of an answer the checks read (full-sentence answers) are read again, and their readings kept but not
taken.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pyarrow as pa

from cxrvqa.core.provenance import stable_hash
from cxrvqa.store import Store, in_studies, study_params

T = TypeVar("T")

#: The kept readings of the sentences of the chunk this process validates: text -> JSON (`use`).
_stored: dict[str, str] = {}
#: The readings this process made since `use`: text -> mentions (`made`).
_new: dict[str, tuple[Any, ...]] = {}

#: Over every stored sentence of the studies, not only their current reports' (`current_sentences` ranks all
#: reports for each batch: 0.07-0.10 against 0.025-0.037 s a batch of 1,000 studies at 100k): a reading is taken by
#: its text alone, so one of an older report's sentence is never wrong, only unused.
LOAD_SQL = (
    "SELECT DISTINCT s.study_id, r.text, r.reading FROM sentences s JOIN sentence_readings r "
    "ON r.text = s.text AND r.reader_version = ? WHERE {studies}"
)


#: `unread`: each text once, and only those with no kept reading of the reader version (the parameter).
UNREAD_SQL = (
    "SELECT DISTINCT s.text FROM current_sentences s WHERE NOT EXISTS "
    "(SELECT 1 FROM sentence_readings r WHERE r.reader_version = ? AND r.text = s.text)"
)


#: The digest of this module's source as this process loaded it (`reader_version`).
_SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def reader_version() -> str:
    """The version a kept reading must have to be taken (see the module's docstring): of the code this process
    loaded, not of the files as they are now (the flow's process asks when its validation starts; a reader edited
    while the build ran labelled the running code's readings with the edited code's version, and the next build took
    them as its own)."""
    from cxrvqa.validation import independent

    sources = [independent.SOURCE_DIGEST, _SOURCE_DIGEST]
    return stable_hash([independent.VERSION, sources, version("spacy"), version("medspacy")])


def kept(text: str, read: Callable[[str], tuple[T, ...]], make: Callable[..., T]) -> tuple[T, ...]:
    """The reading of ``text``: the kept one (its mentions made by ``make``), else ``read``'s, remembered as new."""
    stored = _stored.get(text)
    if stored is not None:
        return decode(stored, make)
    found = read(text)
    _new[text] = found
    return found


def encode(mentions: Iterable[Any]) -> str:
    """A reading as JSON: each mention's fields in order, a set as a sorted list."""
    return orjson.dumps(
        [
            [sorted(v) if isinstance(v, frozenset) else v for v in (getattr(m, f.name) for f in dataclasses.fields(m))]
            for m in mentions
        ]
    ).decode()


def decode(stored: str, make: Callable[..., T]) -> tuple[T, ...]:
    """The mentions of a reading `encode` wrote (a list is a set)."""
    return tuple(make(*(frozenset(v) if isinstance(v, list) else v for v in fields)) for fields in orjson.loads(stored))


def use(stored: dict[str, str]) -> None:
    """The kept readings the next chunk's checks may take; the readings made before are forgotten."""
    _stored.clear()
    _stored.update(stored)
    _new.clear()


def made(reader: str, run_id: str) -> pa.Table:
    """The `sentence_readings` rows of the readings made since `use` (then forgotten, as are the kept ones)."""
    texts = list(_new)
    rows = _rows(reader, run_id, texts, [encode(_new[t]) for t in texts])
    _stored.clear()
    _new.clear()
    return rows


def _rows(reader: str, run_id: str, texts: list[str], encoded: list[str]) -> pa.Table:
    """`sentence_readings` rows: each text with its encoded reading."""
    return pa.table(
        {
            "reader_version": pa.repeat(reader, len(texts)),
            "text": pa.array(texts, pa.string()),
            "reading": pa.array(encoded, pa.string()),
            "run_id": pa.repeat(run_id, len(texts)),
        }
    )


def unread(store: Store, reader: str) -> list[str]:
    """The distinct sentences of the current reports that no reading of ``reader`` is kept for (in no order)."""
    return [text for (text,) in store.query(UNREAD_SQL, [reader])]


def read_afresh(texts: list[str], reader: str, run_id: str) -> pa.Table:
    """The `sentence_readings` rows of ``texts``, each read by the independent reader (in a worker, ahead of the
    validation: `cxrvqa.validation.stage.read_ahead`); its caches are left as they were."""
    from cxrvqa.validation import independent

    return _rows(reader, run_id, texts, [encode(independent.read_sentence_afresh(text)) for text in texts])


def load(store: Store, study_ids: list[str], reader: str) -> dict[str, dict[str, str]]:
    """Per study, the kept readings of its reports' sentences: text -> JSON."""
    found: dict[str, dict[str, str]] = {}
    if not study_ids:
        return found
    sql = LOAD_SQL.format(studies=in_studies("s.study_id"))
    for study, text, reading in store.query(sql, [reader, *study_params(study_ids)]):
        found.setdefault(study, {})[text] = reading
    return found


def forget_others(store: Store, reader: str) -> int:
    """Delete the kept readings of every other reader version (never taken again by this code: without this, each
    change of the checks would leave a whole build's readings behind); how many rows went."""
    if not reader:
        return 0
    (gone,) = store.con.execute("DELETE FROM sentence_readings WHERE reader_version <> ?", [reader]).fetchone()
    return int(gone)
