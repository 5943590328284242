"""One exception base for the project, with structured subclasses.

Every error names what it was about (a record, a file, a setting), what was expected
and what was found, so that a user can act on the message alone.
"""

from __future__ import annotations


class CxrvqaError(Exception):
    """Base of every error cxrvqa raises on purpose."""


class ConfigError(CxrvqaError):
    """A configuration file or flag is invalid."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class ResourceError(CxrvqaError):
    """A packaged data file (vocabulary, schema, template) is missing or invalid."""

    def __init__(self, resource: str, problem: str):
        self.resource = resource
        self.problem = problem
        super().__init__(f"packaged resource {resource!r}: {problem}")


class StoreError(CxrvqaError):
    """The DuckDB store cannot be used."""


class StoreLockedError(StoreError):
    """Another process holds the database: DuckDB allows a single writer."""

    def __init__(self, path: str, holder: str | None):
        self.path = path
        self.holder = holder
        who = f" by {holder}" if holder else " by another process"
        super().__init__(
            f"database {path} is locked{who}; cxrvqa allows one writer at a time. "
            "Wait for the other build to finish (or stop it) and try again."
        )


class SchemaVersionError(StoreError):
    """The database was written by a newer cxrvqa than this one."""

    def __init__(self, path: str, found: int, supported: int):
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"database {path} has schema version {found}, but this cxrvqa supports up to "
            f"{supported}; upgrade cxrvqa or use another --out folder."
        )


class InputError(CxrvqaError):
    """An input path or file (manifest, images folder) is unusable as a whole."""

    def __init__(self, path: str, expected: str, found: str):
        self.path = path
        self.expected = expected
        self.found = found
        super().__init__(f"{path}: expected {expected}, found {found}")


class TemplateError(CxrvqaError):
    """A question template file is invalid: names the file and every problem found."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"question template {source}: " + "; ".join(problems))


class ClusterError(CxrvqaError):
    """The Dask cluster of a build cannot do its part: unreachable, without workers, or with workers that
    cannot see the out folder or reach the Prefect API."""

    def __init__(self, address: str, problem: str):
        self.address = address
        self.problem = problem
        super().__init__(f"Dask cluster {address}: {problem}")
