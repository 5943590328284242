"""DuckDB store: connection, migrations, run bookkeeping, bulk writes."""

from cxrvqa.store.db import SCHEMA_VERSION, Store, in_studies, open_writer, study_params
from cxrvqa.store.runs import StageCounts, finish_run, finish_stage, recorded_run, start_run, start_stage

__all__ = [
    "SCHEMA_VERSION",
    "StageCounts",
    "Store",
    "finish_run",
    "finish_stage",
    "in_studies",
    "open_writer",
    "recorded_run",
    "start_run",
    "start_stage",
    "study_params",
]
