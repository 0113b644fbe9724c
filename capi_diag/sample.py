"""Public re-export of :mod:`capi_diag.io.sample`, kept at this documented path for users' scripts.

New code imports :mod:`capi_diag.io.sample` directly.
"""

from capi_diag.io.sample import *  # noqa: F403
from capi_diag.io.sample import MIX, write_sample

__all__ = ['write_sample', 'MIX']
