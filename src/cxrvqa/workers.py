"""What every worker of the process pool (`cxrvqa.core.parallel`) needs, built once in the forkserver the workers
are forked from: the stages' modules and the rules each builds on first use (the extractor's matchers, the
independent reader's spaCy pipeline and ConText rules). Each worker imported and built them itself, ~3.3 CPU
seconds apiece (10k synthetic studies: ~5% of a build's CPU, and 2 of every 28 CPU seconds of a template's
rebuild), now paid once, and its pages are shared with the workers until they write to them. The objects are
then frozen out of the cyclic collector (`gc.freeze`): a worker's collections never walk them."""

from __future__ import annotations

import gc

from cxrvqa.extraction import rules as extraction_rules
from cxrvqa.extraction import stage as extraction_stage  # noqa: F401 - imported for the workers
from cxrvqa.imaging import convert  # noqa: F401 - imported for the workers
from cxrvqa.qa import stage as qa_stage  # noqa: F401 - imported for the workers
from cxrvqa.validation import independent
from cxrvqa.validation import stage as validation_stage  # noqa: F401 - imported for the workers


def build() -> None:
    """The rules, built; a rule file that does not load is left to the worker that needs it, which reports it
    with the record it was working on (the forkserver would only die of it)."""
    try:
        extraction_rules.rules()
        independent.build_reader()
    except Exception:  # noqa: BLE001, S110 - reported where it is used
        pass
    gc.freeze()


build()
