"""Send-log lines read as a server log: ``{"request": {"data": [...]}, "http_status", "response"}`` (or
``body`` for ``request``, docs/send-log.md) is read as its request body, so that ``report --server
send-log.jsonl`` imports the events the server sent (each event of ``data`` is a row, as for a bare
request body). Nothing else of the line is read: an ``access_token`` beside the events never is."""

from __future__ import annotations


def send_body(doc: str) -> str:
    """SQL: the JSON value ``doc``, or its ``request``/``body`` when it is a send-log line."""
    return (f"CASE WHEN json_type({doc}) = 'OBJECT' AND json_type({doc}, '$.data') IS NULL "
            f"AND json_type({doc}, '$.request.data') = 'ARRAY' THEN json_extract({doc}, '$.request') "
            f"WHEN json_type({doc}) = 'OBJECT' AND json_type({doc}, '$.data') IS NULL "
            f"AND json_type({doc}, '$.body.data') = 'ARRAY' THEN json_extract({doc}, '$.body') "
            f"ELSE {doc} END")
