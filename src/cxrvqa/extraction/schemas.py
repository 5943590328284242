"""Regenerates the JSON Schemas generated from models: `python -m cxrvqa.extraction.schemas --write` writes
schemas/scene_graph.schema.json (cxrvqa.core.scene_graph) and schemas/llm_extraction_response.schema.json
(cxrvqa.extraction.llm); tests fail when a schema file and its model drift."""

from __future__ import annotations

import sys
from pathlib import Path

from cxrvqa.core import scene_graph
from cxrvqa.extraction import llm


def write_schemas() -> None:
    for name, text in (
        ("scene_graph.schema.json", scene_graph.schema_text()),
        ("llm_extraction_response.schema.json", llm.schema_text()),
    ):
        target = Path(__file__).resolve().parents[3] / "schemas" / name
        target.write_text(text)
        print(f"wrote {target}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(
            "usage: python -m cxrvqa.extraction.schemas --write   (regenerates the schemas generated from "
            "models: schemas/scene_graph.schema.json, schemas/llm_extraction_response.schema.json)"
        )
    write_schemas()
