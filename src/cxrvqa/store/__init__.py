"""DuckDB store: connection, migrations, run bookkeeping, bulk writes."""

from cxrvqa.store.db import SCHEMA_VERSION, Store, open_writer
from cxrvqa.store.runs import StageCounts, finish_run, finish_stage, start_run, start_stage

__all__ = ["SCHEMA_VERSION", "StageCounts", "Store", "finish_run", "finish_stage", "open_writer", "start_run", "start_stage"]
