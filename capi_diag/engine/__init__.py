"""The engine: the database, the runner that compiles and materializes expressions, the shared measures.

:mod:`.db` opens DuckDB; :mod:`.runner` compiles Ibis expressions once and owns every temporary table
it makes; :mod:`.rules` holds the value rules for ``user_data`` keys (Ibis); :mod:`.measures` holds the
measurements several analyses share; :mod:`.dataset` is what an analysis reads; :mod:`.pii` masks raw
customer data at rest and for display.

May import: :mod:`capi_diag.core`.
"""
