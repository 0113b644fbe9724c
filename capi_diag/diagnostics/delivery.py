"""Delivery: what Meta answered to each server send.

What it measures (needs Meta's answers: a send log, or response columns on the server log's rows):
events sent and requests; events **accepted** (their request got a 2xx without an error body) and
**rejected** (every other answer), the rejections grouped by Meta's ``code`` / ``error_subcode`` with
the error catalogue's meaning and fix (:mod:`capi_diag.meta.errors`); requests whose
``events_received`` is lower than the events they carried (Meta dropped some without an error); the
warnings Meta returned inside 200 answers (``messages``); and example requests with their
``fbtrace_id`` (what Meta support asks for).

Why it matters for Meta CAPI: Meta answers per request, not per event. One bad event (an unhashed
email, an event older than 7 days) refuses the whole batch, so every other event in it is lost too;
a 200 with a lower ``events_received`` or with ``messages`` is a silent partial loss.

Usual cause and fix: see each code's fix; most rejections are payload errors (hashing, stale
``event_time``, malformed ``fbc``) that also show up in the other sections, and expired tokens
(code 190) that refuse every send until the token is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from capi_diag.core import fmt
from capi_diag.core.config import Config
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import ibis, ir
from capi_diag.meta.errors import lookup

SECTION = "delivery"

DEFAULTS: dict[str, Any] = {"examples": 10}
"""``examples``: example requests kept per rejection code and per partial answer."""


def _examples(config: Config) -> int:
    n = config.options(SECTION, DEFAULTS)["examples"]
    return int(n) if isinstance(n, int) and n >= 0 else 10


def analyze(ds: Dataset, config: Config, prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``delivery`` section (definitions in the module docstring)."""
    ds = ds.using(config)
    if not ds.has_input("sends"):
        return {"status": "not_evaluated", "reason": "No answers from Meta: import a send log (--send-log FILE) "
                "or a server log with http_status / events_received / error_code columns."}
    n_ex = _examples(config)
    sd = ds.sends()
    totals = ds.fetch("delivery.totals", lambda: sd.aggregate(
        rows_sent=sd.count(), requests=sd.request_id.nunique(),
        accepted=sd.accepted.fill_null(False).cast("int64").sum(),
        rejected=(~sd.accepted.fill_null(False)).cast("int64").sum()))[0]

    def by_code() -> ir.Table:
        r = sd.filter(~sd.accepted.fill_null(False))
        r = r.mutate(_rn=ibis.row_number().over(group_by=["error_code", "error_subcode", "http_status"],
                                                order_by=["sent_at", "file_index", "line", "position"]))
        return r.group_by(["error_code", "error_subcode", "http_status"]).aggregate(
            rows=r.count(), requests=r.request_id.nunique(),
            message=r.error_message.argmin(r._rn), fbtrace_id=r.fbtrace_id.argmin(r._rn),
            source_file=r.source_file.argmin(r._rn), line=r.line.argmin(r._rn),
        ).order_by([ibis.desc("rows"), "error_code", "error_subcode"])

    rejected = []
    for r in ds.fetch("delivery.by_code", by_code):
        entry = lookup(r["error_code"], r["error_subcode"], r["http_status"])
        rejected.append({
            "code": r["error_code"], "subcode": r["error_subcode"], "http_status": r["http_status"],
            "rows": int(r["rows"]), "requests": int(r["requests"]), "title": entry.title,
            "meaning": entry.meaning, "fix": entry.fix, "kind": entry.kind,
            "example": {"source_file": r["source_file"], "line": r["line"], "message": r["message"],
                        "fbtrace_id": r["fbtrace_id"]},
        })

    req = sd.group_by(["request_id", "source_file", "line"]).aggregate(
        sent_at=sd.sent_at.min(), events_sent=sd.events_sent.max(), events_received=sd.events_received.max(),
        accepted=sd.accepted.fill_null(False).any(), messages=sd.messages.max(), fbtrace_id=sd.fbtrace_id.max())

    def short() -> ir.Table:
        t = req.filter(req.accepted & req.events_received.notnull() & (req.events_received < req.events_sent))
        return t.order_by(["sent_at", "source_file", "line"])

    short_rows = ds.fetch("delivery.short", short)

    def warned() -> ir.Table:
        t = req.filter(req.accepted & req.messages.notnull())
        return t.order_by(["sent_at", "source_file", "line"])

    warn_rows = ds.fetch("delivery.warned", warned)
    messages: dict[str, int] = {}


    for r in warn_rows:
        try:
            for m in json.loads(r["messages"]):
                text = m if isinstance(m, str) else json.dumps(m, sort_keys=True)
                messages[text] = messages.get(text, 0) + 1
        except (TypeError, ValueError):
            messages[str(r["messages"])] = messages.get(str(r["messages"]), 0) + 1

    def ex(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"source_file": r["source_file"], "line": r["line"], "events_sent": r["events_sent"],
                 "events_received": r["events_received"], "fbtrace_id": r["fbtrace_id"]} for r in rows[:n_ex]]

    rows_sent = int(totals["rows_sent"] or 0)
    out: dict[str, Any] = {
        "status": "evaluated", "reason": None,
        "source": "send log" if "send_log" in ds.present.get("sends", ()) else "server log response columns",
        "rows_sent": rows_sent, "requests": int(totals["requests"] or 0),
        "accepted": int(totals["accepted"] or 0), "rejected": int(totals["rejected"] or 0),
        "rejected_by_code": rejected,
        "short_requests": {"requests": len(short_rows),
                           "events_missing": sum(int(r["events_sent"]) - int(r["events_received"])
                                                 for r in short_rows),
                           "examples": ex(short_rows)},
        "warnings": {"requests": len(warn_rows),
                     "messages": [{"message": k, "requests": v}
                                  for k, v in sorted(messages.items(), key=lambda kv: (-kv[1], kv[0]))],
                     "examples": ex(warn_rows)},
    }
    if rows_sent == 0:
        out["status"], out["reason"] = "not_evaluated", "Meta's answers hold no event."
    return out


def failing_rows(ds: Dataset, config: Config) -> ir.Table:
    """Every event of a refused request (``rejected``, an error), with the code in ``detail``."""
    if not ds.has_input("sends"):
        t = ds.events("server")
        return t.filter(ibis.literal(False)).select(
            section=ibis.literal(SECTION), finding=ibis.literal("rejected"), severity=ibis.literal("error"),
            role=ibis.literal("server"), source_file=t.source_file, line=t.line, event_name=t.event_name,
            event_id=t.event_id, detail=ibis.literal(""))
    sd = ds.sends()
    r = sd.filter(~sd.accepted.fill_null(False))
    code = r.error_code.cast("string").fill_null("none")
    detail = ibis.literal("code ").concat(code, ibis.ifelse(r.error_subcode.isnull(), "",
                                                            ibis.literal("/").concat(r.error_subcode.cast("string"))))
    return r.select(
        section=ibis.literal(SECTION), finding=ibis.literal("rejected"), severity=ibis.literal("error"),
        role=ibis.literal("server"), source_file=r.source_file, line=r.line, event_name=r.event_name,
        event_id=r.event_id, detail=detail).select(*FAILING_ROW_COLUMNS)


def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One sentence for accepted/rejected, one per rejection code, partial answers and warnings."""
    if result.get("status") != "evaluated":
        return []
    out = [{"label": "Server events Meta rejected", "value": result["rejected"], "unit": "event",
            "text": f"{result['rejected']:,} of {result['rows_sent']:,} events sent in {result['requests']:,} "
                    f"requests were refused; {result['accepted']:,} were accepted.",
            "fix": "See each error code below." if result["rejected"] else ""}]
    for r in result["rejected_by_code"]:
        code = f"{r['code']}" + (f"/{r['subcode']}" if r["subcode"] else "")
        trace = f" (fbtrace_id {r['example']['fbtrace_id']})" if r["example"].get("fbtrace_id") else ""
        out.append({"label": f"Rejected: {r['title']} ({code})", "value": r["rows"], "unit": "event",
                    "text": f"{r['rows']:,} events in {r['requests']:,} requests. {r['meaning']}{trace}",
                    "fix": r["fix"]})
    sr = result["short_requests"]
    out.append({"label": "Requests Meta counted short", "value": sr["requests"], "unit": "request",
                "text": f"{fmt.counted(sr['requests'], 'accepted request')} with events_received below the "
                        f"events sent ({fmt.counted(sr['events_missing'], 'event')} missing).",
                "fix": "Check each event of those batches against the payload rules; Meta drops invalid events "
                       "silently." if sr["requests"] else ""})
    w = result["warnings"]
    out.append({"label": "Warnings inside accepted answers", "value": w["requests"], "unit": "request",
                "text": f"{fmt.counted(w['requests'], 'accepted request')} came back with messages"
                        + (f", e.g. \"{w['messages'][0]['message']}\"." if w["messages"] else "."),
                "fix": "Read Meta's messages; they name the parameter to fix." if w["requests"] else ""})
    return out
