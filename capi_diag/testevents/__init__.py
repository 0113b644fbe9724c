"""Test Events: the sender, its local validation, the send log and the send history.

:mod:`.sender` sends a test journey and judges it (shared by the CLI's ``send-test``/``watch`` and the
dashboard's Test Events page); :mod:`.validate` checks a payload with the diagnostics' own rules before
it is sent, through the same dataset and analyses as a report; :mod:`.store` keeps sends and the
promotion window's state in DuckDB; :mod:`.send_log` writes the JSON Lines send log.

May import: every layer below the front ends (core, engine, io, diagnostics, verdict, report, api, meta).
"""
