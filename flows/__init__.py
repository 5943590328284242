"""Prefect flows of cxrvqa: sequencing, batching and retries only; the logic lives in `cxrvqa`.

Importing this package sets Prefect's environment defaults (flows.prefect_env; values the user set win), so that
they are in place before any flow module imports `prefect`, whose settings are fixed at its import. The flow
modules then import in the usual order.
"""

from flows.prefect_env import configure_prefect_environment

configure_prefect_environment()
