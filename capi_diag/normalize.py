"""Public re-export of :mod:`capi_diag.core.normalize`, kept at this documented path for users' scripts.

New code imports :mod:`capi_diag.core.normalize` directly.
"""

from capi_diag.core.normalize import *  # noqa: F403
from capi_diag.core.normalize import explain_invalid, hash_value, normalize

__all__ = ['normalize', 'hash_value', 'explain_invalid']
