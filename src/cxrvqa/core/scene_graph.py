"""The scene graph of one study (DESIGN.md, "Scene graph"): sentences, observations, regions.

`schemas/scene_graph.schema.json` is generated from these models
(`python -m cxrvqa.extraction.schemas --write`); a test fails when the two drift.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cxrvqa.core.text import SECTIONS, section_rules
from cxrvqa.core.vocab import Category, Change, FindingId, Laterality, RegionId, Severity

Section = StrEnum("Section", {s: s for s in SECTIONS})
#: Sections whose sentences state findings (indication, comparison and technique do not).
FINDING_SECTIONS = frozenset({"findings", "impression", "other"})
#: The modifier of a negation the report narrows ("no large effusion", "no acute fracture"): the
#: observation is absent, but the finding is not ruled out, and no question is asked of it.
QUALIFIED_NEGATION = "qualified_negation"
#: The modifier of a mention next to a de-identification token (one word after it, two before:
#: "sternotomy XXXX", "XXXX calcified granuloma", "XXXX representing adenopathy"): the hidden word may
#: be its head or a hedge, so no question rests on it.
DEID_ADJACENT = "deid_adjacent"


#: The modifier of an observation whose side and places come from elsewhere in its clause, not from its
#: own words or the words right after it ("left basilar opacity representing atelectasis": atelectasis):
#: labels may use them, but no question asks where or on which side it is.
PLACE_FROM_CLAUSE = "place_from_clause"
#: The modifier of an observation in a sentence about another examination reported with the chest ("Left
#: knee: degenerative changes"): not a finding of the chest radiograph, so no question rests on it.
OTHER_EXAM = "other_exam"
#: The modifier of a finding the radiologist attributes to an artifact or to overlapping normal structures
#: ("opacity related to superimposed soft tissues"; "This may be artifact."): absent when the attribution
#: is stated, possible when it is hedged; no question rests on it either way.
ATTRIBUTED_TO_ARTIFACT = "attributed_to_artifact"
#: The modifier of a finding named as the patient's history ("given the history of malignancy", "consistent with
#: previous active tuberculosis pneumonia"): not what this radiograph shows, so no question rests on it.
HISTORICAL = "historical"
#: The modifier of a finding in a condition ("If there is continued concern for occult fracture, consider dedicated
#: rib series."): what the radiologist would do if it were there, not what this radiograph shows (round AI), so
#: no question rests on it.
HYPOTHETICAL = "hypothetical"
#: The modifier of an opacity or density the report reads as a finding of another kind ("midline retrocardiac
#: opacity suggestive of a small hiatal hernia"): not a lung finding, so no question rests on it.
READ_AS_OTHER = "read_as_other"
#: The modifier of each of two findings joined by a slash ("aortic ectasia/tortuosity", "thickening/scarring"):
#: readers split on whether the slash names alternatives or one thing twice, so no question rests on either and
#: the report is not read as a whole.
SLASH_PAIR = "slash_pair"
#: The modifier of a finding after a change word that also describes ("increased lung markings"): in a report
#: that refers to no prior study it reads as what the finding looks like, and the observation has no change.
CHANGE_ADJECTIVE = "change_adjective"
#: The modifier of a borderline finding that the report calls normal at its upper limit ("heart size upper limits
#: of normal", "the heart is top normal in size"): uncertain and borderline in the graph (an impression's
#: "cardiomegaly" beside it is a mixed reading), but a normal size to labellers (the labels14 export codes it 0).
TOP_NORMAL = "top_normal"


def deid_pattern() -> re.Pattern[str]:
    """De-identification tokens ("XXXX", "___"), as the report parser's rules declare them."""
    return section_rules().deid


class Presence(StrEnum):
    present = "present"
    absent = "absent"  # explicitly negated: different from "not mentioned"
    uncertain = "uncertain"


class Certainty(StrEnum):
    """Why an uncertain observation is not present: what the radiologist committed to instead."""

    possible = "possible"  # hedged: "may represent", "cannot exclude", "questionable"
    probable = "probable"  # "likely", "probable", "most likely"
    differential = "differential"  # one of named candidates: "atelectasis or scarring", "X versus Y"
    borderline = "borderline"  # at the edge of normal: "borderline cardiomegaly"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)


class Sentence(_Model):
    id: int = Field(ge=0)
    section: Section
    text: str
    start: int = Field(ge=0, description="Character offset into the report text.")
    end: int = Field(ge=0)


class Evidence(_Model):
    """Where the report says it: a sentence and the characters of the mention."""

    sentence_id: int = Field(ge=0)
    start: int = Field(ge=0, description="Character offset into the report text.")
    end: int = Field(ge=0)


class Observation(_Model):
    id: str = Field(pattern=r"^o[0-9]+$")
    name: str = Field(min_length=1, description="The mention as written, or the finding's name when derived.")
    finding: FindingId | None = Field(None, description="Vocabulary finding; None when the mention is unresolved.")
    unresolved_text: str | None = Field(None, description="Kept when no vocabulary finding matched.")
    category: Category | None = None
    regions: list[RegionId] = Field(default_factory=list)
    laterality: Laterality | None = None
    presence: Presence
    certainty: Certainty | None = Field(
        None,
        description="For an uncertain observation: hedged (possible), "
        "probable, one of a differential, or borderline. None otherwise.",
    )
    severity: Severity | None = None
    change: Change | None = None
    modifiers: list[str] = Field(default_factory=list, description="Other modifiers, as written.")
    evidence: list[Evidence] = Field(default_factory=list)
    parent_id: str | None = Field(None, description="The observation this one is a sub-observation of.")
    from_report: bool = Field(True, description="False for defaults the extractor adds.")
    derived_from: list[str] = Field(
        default_factory=list,
        description="Ids of observations or statements it was "
        "propagated from (e.g. 'lungs are clear' -> absent pneumonia).",
    )

    @model_validator(mode="after")
    def _named(self) -> "Observation":
        if self.finding is None and not self.unresolved_text:
            raise ValueError(f"observation {self.id}: expected a vocabulary finding or unresolved_text, found neither")
        if self.from_report and not self.evidence and not self.derived_from:
            raise ValueError(f"observation {self.id}: from the report but without evidence")
        if self.certainty is not None and self.presence != Presence.uncertain:
            raise ValueError(
                f"observation {self.id}: certainty {self.certainty!r} needs presence 'uncertain', "
                f"found {self.presence!r}"
            )
        return self


class NormalStatement(_Model):
    """A sentence that calls a whole organ or study normal ("lungs are clear"): the findings it rules out
    (as derived absent observations) and the regions it declares normal. An acute-only statement
    ("no acute cardiopulmonary process") declares no region normal."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    sentence_id: int = Field(ge=0)
    regions: list[RegionId] = Field(default_factory=list)


class RegionBox(_Model):
    """A region's box on one image, in PNG pixel coordinates."""

    region: RegionId
    image_id: str
    x_min: float = Field(ge=0)
    y_min: float = Field(ge=0)
    x_max: float = Field(ge=0)
    y_max: float = Field(ge=0)
    source: str = Field(description="Where the box came from (annotation file, model).")


class SceneGraph(_Model):
    study_id: str = Field(min_length=1)
    backend: Literal["rules", "llm", "synthetic"] = Field(
        description="Who made the graph: an extractor backend, or `synthetic` for the known graph of a report "
        "written by `cxrvqa synth`."
    )
    indication: str | None = None
    sentences: list[Sentence]
    observations: list[Observation]
    statements: list[NormalStatement] = Field(
        default_factory=list,
        description="Normal statements of the "
        "report (backend `rules`; the `llm` backend states absences "
        "as observations).",
    )
    region_boxes: list[RegionBox] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> "SceneGraph":
        sentence_ids = {s.id for s in self.sentences}
        observation_ids = [o.id for o in self.observations]
        if len(set(observation_ids)) != len(observation_ids):
            raise ValueError(f"study {self.study_id}: observation ids are not unique")
        for observation in self.observations:
            missing = [e.sentence_id for e in observation.evidence if e.sentence_id not in sentence_ids]
            if missing:
                raise ValueError(f"observation {observation.id}: evidence names unknown sentence(s) {missing}")
            if observation.parent_id is not None and observation.parent_id not in observation_ids:
                raise ValueError(f"observation {observation.id}: parent {observation.parent_id} does not exist")
        for statement in self.statements:
            if statement.sentence_id not in sentence_ids:
                raise ValueError(f"statement {statement.id}: names unknown sentence {statement.sentence_id}")
        return self


def published_schema(model: type[BaseModel], file_name: str) -> dict[str, Any]:
    """A model's JSON Schema as published in `schemas/<file_name>`."""
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://cxrvqa.dev/schemas/{file_name}"
    return schema


def schema_file_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def json_schema() -> dict[str, Any]:
    return published_schema(SceneGraph, "scene_graph.schema.json")


def schema_text() -> str:
    return schema_file_text(json_schema())
