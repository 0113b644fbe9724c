"""One error family for capi-diag, and the exit codes every command shares.

Every error the user can cause carries a short ``title`` and a ``message`` that names the input
(file, column, row, endpoint), what was found and what to do. Problems *in the data* are findings
in results, never exceptions. The CLI prints ``str(error)`` as one line on stderr and exits with the
error's ``exit_code`` (:data:`EXIT_USAGE` unless the error says otherwise); the UI shows it with
``st.error``.
"""

from __future__ import annotations

EXIT_OK = 0
"""The job ran and found nothing at or above the bar (``send-test``: accepted; ``watch``: ready)."""
EXIT_BAD_RESULT = 1
"""The job ran and the result is bad: checklist failures, Meta rejected a payload, a promotion window
not reached in time, figures beyond their tolerance, Meta's answer not obtained after the retries."""
EXIT_USAGE = 2
"""The job could not run because of the user's input or configuration (or Meta refused the token, the
Pixel or a permission): one line on stderr naming the problem and the fix, never a traceback."""
EXIT_INTERNAL = 3
"""A bug in capi-diag itself: one line on stderr (``CAPI_DIAG_DEBUG=1`` shows the traceback)."""


class CapiDiagError(Exception):
    """Base class: a problem with the user's input or configuration."""

    title = "capi-diag error"
    exit_code = EXIT_USAGE

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
