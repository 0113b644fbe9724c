"""capi-diag: diagnostics for Meta Conversions API setups.

The package is a headless core: everything here runs without Streamlit, except ``capi_diag.ui``.
"""

from __future__ import annotations

__version__ = "0.1.0"
