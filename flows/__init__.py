"""Prefect flows of cxrvqa: sequencing, batching and retries only; the logic lives in `cxrvqa`."""
