"""After launch: ``capi-diag monitor`` polls Meta's own figures (Dataset Quality and ``/{pixel_id}/stats``),
keeps their history in DuckDB and alerts on what breaks; ``capi-diag compare`` says what changed between
two reports (or one set of logs split at a deploy).

* :mod:`.clock`: the wall clock and wait (test seams);
* :mod:`.poll`: one snapshot of Meta's figures;
* :mod:`.history`: the DuckDB history (snapshots, hourly buckets, open and cleared alerts, deploy marks);
* :mod:`.alerts`: the alert rules and their ``[monitor]`` thresholds;
* :mod:`.webhook`: posting alerts (Slack-compatible JSON);
* :mod:`.run`: the monitor loop;
* :mod:`.compare`: before/after of two reports.

May import: core, engine, meta, io, diagnostics, verdict, report and api (the pipeline, for compare).
"""
