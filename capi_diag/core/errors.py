"""One error family for capi-diag.

Every error the user can cause carries a short ``title`` and a ``message`` that names the input
(file, column, row, endpoint), what was found and what to do. Problems *in the data* are findings
in results, never exceptions. The CLI prints ``str(error)`` as one line on stderr and exits 2; the UI
shows it with ``st.error``.
"""

from __future__ import annotations


class CapiDiagError(Exception):
    """Base class: a problem with the user's input or configuration."""

    title = "capi-diag error"
    exit_code = 2

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class IngestError(CapiDiagError):
    """A log file cannot be used at all (missing, empty, binary, no usable columns...)."""

    title = "Unusable log file"


class ConfigError(CapiDiagError):
    """The ``--config`` TOML or a command-line option is invalid."""

    title = "Invalid configuration"


class UsageError(CapiDiagError):
    """The command line is incomplete or contradictory."""

    title = "Usage error"


class ResourceLimitError(CapiDiagError):
    """DuckDB needed more memory than its ``memory_limit`` and could not spill (see ``--memory-limit``)."""

    title = "Memory limit reached"
