"""Public re-export of :mod:`capi_diag.engine.rules`, kept at this documented path for users' scripts.

New code imports :mod:`capi_diag.engine.rules` directly.
"""

from capi_diag.engine.rules import *  # noqa: F403
from capi_diag.engine.rules import row_validity

__all__ = ['row_validity']
