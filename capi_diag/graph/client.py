"""Public re-export of :mod:`capi_diag.meta.client`, kept at this documented path for users' scripts.

New code imports :mod:`capi_diag.meta.client` directly.
"""

from capi_diag.meta.client import *  # noqa: F403
from capi_diag.meta.client import GraphClient, GraphConfig

__all__ = ['GraphClient', 'GraphConfig']
