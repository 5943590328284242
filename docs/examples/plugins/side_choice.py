"""An example plugin: a two-option "left or right" choice question.

Load it with `cxrvqa build --programs docs/examples/plugins/side_choice.py --templates docs/examples/templates`
(or list it under `qa.program_modules` in the config). Its template is
docs/examples/templates/finding_side_choice.yaml (`options: 2`).
"""

from cxrvqa.qa.programs import Answer, Ask, program, side_of


@program("finding_side_choice", ("finding",), ("multiple_choice",), options=(2, 2),
         answers="Which side a present one-sided finding is on, as a choice between left and right.")
def finding_side_choice(ask: Ask) -> Answer | None:
    fact = ask.study.facts.get(ask.args["finding"])
    if fact is None or fact.presence != "present" or fact.derived:
        return None
    side = side_of(fact)
    if side not in ("left", "right"):   # both sides, or no side: not a left-or-right question
        return None
    other = "right" if side == "left" else "left"
    return Answer(side, evidence=tuple(fact.evidence), findings=(fact.finding,), regions=tuple(fact.regions),
                  distractors=(other,))
