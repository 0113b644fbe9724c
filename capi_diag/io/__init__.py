"""Import: log files, orders exports and send logs -> canonical tables, each with an import report.

:mod:`.ingest` reads browser and server logs into DuckDB (header mapping, typing, rejected rows with
their reasons, PII masked at rest); :mod:`.orders` reuses its staging for the orders export and the
send log; :mod:`.spark` does the same import on Spark; :mod:`.sample` generates the demo data.

May import: :mod:`capi_diag.core`, :mod:`capi_diag.engine`, :mod:`capi_diag.meta` (the error catalogue).
"""
