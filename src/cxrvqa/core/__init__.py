"""What every stage shares: vocabularies, the scene-graph model, report text helpers, grades, provenance
stamping, packaged resources, the LLM client and request cache, the process pool and progress reporting.

Nothing in `cxrvqa.core` imports a stage package (tests/test_imports.py checks it)."""
