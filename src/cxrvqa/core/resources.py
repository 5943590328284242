"""Access to packaged data (schemas, vocabularies, prompts, demo) through importlib.resources.

Data files are never found relative to the working directory, so an installed cxrvqa
works from anywhere. Each YAML data file is validated against its JSON Schema on load.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import jsonschema
import yaml

from cxrvqa.errors import ResourceError


def resource(*parts: str) -> Traversable:
    """A packaged file or folder, e.g. ``resource("schemas", "vocab", "dicom.yaml")``."""
    node = resources.files("cxrvqa")
    for part in parts:
        node = node / part
    return node


@lru_cache(maxsize=None)
def load_json_schema(name: str) -> dict[str, Any]:
    """A JSON Schema from ``schemas/<name>``. Not checked against the meta-schema here: the packaged schemas are
    fixed and the tests check every one (`tests/core/test_resources.py`); the check cost 0.18-0.19 s for the 8 a
    build's flow process loads as it starts (its forkserver loads them too)."""
    node = resource("schemas", name)
    if not node.is_file():
        raise ResourceError(f"schemas/{name}", "file not found in the installed package")
    try:
        schema = json.loads(node.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResourceError(f"schemas/{name}", f"invalid JSON: {exc}") from exc
    return schema


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """A mapping whose keys are all different: YAML lets a repeated key replace the first silently, which drops the
    rules written under it."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"found the key {key!r} twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing repeated keys."""


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser where PyYAML was built with it (the wheels are): about nine times the pure-Python one;
    refusing repeated keys."""


for _loader in (_SafeLoader, _FastLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str | bytes) -> Any:
    """Safe YAML, parsed by libyaml where it is there; a document it rejects is parsed again by the pure-Python
    parser, whose error (with the offending line quoted) is the one raised."""
    try:
        return yaml.load(text, Loader=_FastLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError:
        return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 (a safe loader)


def load_checked_yaml(relative_path: str, schema_name: str) -> tuple[dict[str, Any], str]:
    """A YAML data file validated against a packaged schema, with its content hash.

    The hash (sha256 of the file bytes, 16 hex digits) goes into provenance so that an
    edited vocabulary invalidates what was computed from it.
    """
    node = resource(*relative_path.split("/"))
    if not node.is_file():
        raise ResourceError(relative_path, "file not found in the installed package")
    raw = node.read_bytes()
    try:
        data = load_yaml(raw)
    except yaml.YAMLError as exc:
        raise ResourceError(relative_path, f"invalid YAML: {exc}") from exc
    validator = jsonschema.Draft202012Validator(load_json_schema(schema_name))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ResourceError(relative_path, f"does not match {schema_name} at {where}: {first.message}")
    return data, hashlib.sha256(raw).hexdigest()[:16]


def compile_any(patterns: Iterable[str], file: str, where: str) -> re.Pattern[str]:
    """One regex matching any of a data file's patterns; a bad one is a `ResourceError` naming its place."""
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error as exc:
        raise ResourceError(file, f"{where}: bad pattern: {exc}") from exc
