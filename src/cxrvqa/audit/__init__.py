"""Audit: why items failed and what changed between runs, read-only over the store (DESIGN.md: stage 6).

`summary` runs the queries (DuckDB SQL, also behind `cxrvqa status`) and returns typed summaries;
`terminal` renders them with rich, `html` as one self-contained page, `command` is the CLI entry.
"""
