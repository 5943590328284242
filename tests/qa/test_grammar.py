"""Every template rendered with every vocabulary value it can take agrees in number and has its articles
(issue 15, class 6: "Is degenerative changes excluded?", "Is nodule excluded?", "pleural abnormality, other")."""

from __future__ import annotations

import re

import pytest

from cxrvqa.core.vocab import vocabulary
from cxrvqa.qa.generate import names_of
from cxrvqa.qa.programs import finding_name, region_name
from cxrvqa.qa.templates import builtin_templates

SINGULAR_VERBS = ("is", "has", "was", "does")
PLURAL_VERBS = ("are", "have", "were", "do")
#: Words after which a singular countable noun phrase needs no article of its own.
DETERMINERS = ("a", "an", "the", "no", "any", "this", "each", "every", "one")


def agreement_errors(text: str, name: str, number: str) -> list[str]:
    """What a reader would flag around each occurrence of ``name`` in ``text``."""
    errors = []
    for match in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, flags=re.IGNORECASE):
        before = re.findall(r"[\w']+", text[: match.start()].lower())
        after = re.findall(r"[\w']+", text[match.end() :].lower())
        # the verb whose subject the name is: "Is there (a) X", "Is (a) X seen", "How severe is the X",
        # "X is ..." (not "Is there evidence of X": the subject is "evidence")
        subject = []
        for word in reversed(before):
            if word not in ("there",) + DETERMINERS:
                break
            subject.append(word)
        governing = before[len(before) - len(subject) - 1] if len(before) > len(subject) else None
        verb = (
            governing
            if governing in SINGULAR_VERBS + PLURAL_VERBS
            else (after[0] if after and after[0] in SINGULAR_VERBS + PLURAL_VERBS else None)
        )
        if verb in SINGULAR_VERBS and number == "plural":
            errors.append(f"{verb!r} with plural {name!r}")
        if verb in PLURAL_VERBS and number != "plural" and verb != "do":  # "Do you see ..." is not agreement
            errors.append(f"{verb!r} with singular {name!r}")
        if (
            number == "singular"
            and before
            and before[-1] not in DETERMINERS
            and not re.search(r"[:,\"']\s*$", text[: match.start()])
        ):
            errors.append(f"no article before singular {name!r} (after {before[-1]!r})")
    return errors


def test_the_checker_flags_what_readers_flagged() -> None:
    assert agreement_errors("Is degenerative changes excluded?", "degenerative changes", "plural")
    assert agreement_errors("Is nodule excluded?", "nodule", "singular")
    assert agreement_errors("How severe is the prominent lung markings?", "prominent lung markings", "plural")
    assert agreement_errors("Yes, there is support devices.", "support devices", "plural")
    assert not agreement_errors("Are degenerative changes excluded?", "degenerative changes", "plural")
    assert not agreement_errors("Is a nodule excluded?", "nodule", "singular")
    assert not agreement_errors("Is there edema in this image?", "edema", "mass")


def _finding_templates() -> list:
    return [t for t in builtin_templates() if t.arguments in ("finding", "finding_region")]


@pytest.mark.parametrize("template", _finding_templates(), ids=lambda t: t.id)
def test_every_finding_question_and_answer_sentence_agrees(template) -> None:
    vocab = vocabulary()
    errors = []
    for finding, item in vocab.findings.items():
        args = {"finding": finding}
        if template.arguments == "finding_region":
            args["region"] = "left_lower_lobe"
        names = names_of(args)
        texts = [v.format(**names) for v in template.variants]
        texts += [pattern.format(answer="yes", **names) for pattern in template.answer_sentence.values()]
        for text in texts:
            errors += [
                f"{template.id}: {text!r}: {e}" for e in agreement_errors(text, finding_name(finding), item["number"])
            ]
    assert errors == []


def test_names_read_as_words_not_labels() -> None:
    """No vocabulary name used in questions is a label ("Pleural abnormality, other", "Osteopenia / ...")."""
    vocab = vocabulary()
    bad = [
        n
        for n in [finding_name(f) for f in vocab.findings] + [region_name(r) for r in vocab.regions]
        if re.search(r"[,/()]", n)
    ]
    assert bad == []
    assert all(re.fullmatch(r"[a-z][a-z -]+", a) for a in vocab.category_adjectives.values())
