"""A HAR file as a browser log: its Pixel hits become browser rows.

A ``.har`` file, or any JSON document whose top level is ``{"log": {...}}`` (Chrome DevTools "Save all
as HAR", Playwright's ``record_har_path``), is read wherever a browser log is read (``report
--browser``, the Import page). Each ``log.entries[i].request`` that is a Pixel hit
(:mod:`capi_diag.io.pixel_hits`: path ``/tr`` or ``/tr/``, ``id`` and ``ev``; ``privacy_sandbox`` copies
are not) becomes one row: ``event_name`` (``ev``), ``event_id`` (``eid``), ``event_time`` (``ts`` in ms,
as seconds; else the entry's ``startedDateTime``), ``event_source_url`` (``dl``), ``fbp``, ``fbc``,
``pixel_id``, ``value``, ``currency``, ``order_id``, ``content_ids`` and ``content_type`` (``cd[*]``) and
the hashed ``ud[*]`` keys. The query is read from the URL (percent-decoded); the body from
``postData.text`` (urlencoded or multipart), else from ``postData.params`` (Chrome keeps them as raw
substrings, so urlencoded ones are percent-decoded here). Sanitized HARs (no cookies, no
``Authorization``) lose nothing: the Pixel sends ``fbp``/``fbc`` as parameters.

A HAR holds a few hundred requests, of which a handful are Pixel hits: it is parsed here in Python and
handed to the import as JSON Lines (one event per line), which DuckDB then reads like any other log.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from capi_diag.core.errors import IngestError
from capi_diag.io.pixel_hits import Hit, body_params, hit_from_params, is_pixel_path

if TYPE_CHECKING:
    from capi_diag.io.ingest import Source

_HAR_HEAD = re.compile(rb'\A(\xef\xbb\xbf)?\s*\{\s*"log"\s*:\s*\{')
USER_DATA_KEYS = ("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id")
CUSTOM_KEYS = ("value", "currency", "order_id", "content_ids", "content_type", "num_items")


def _bytes(src: Source) -> bytes:
    raw = src.data if src.data is not None else Path(src.path or src.name).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _head(src: Source) -> bytes:
    if src.data is not None:
        raw = src.data[:4096]
    else:
        try:
            with open(src.path or src.name, "rb") as fh:
                raw = fh.read(4096)
        except OSError:
            return b""  # the import says what is wrong with the file
    if raw[:2] == b"\x1f\x8b":
        try:
            import zlib

            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
        except Exception:  # noqa: BLE001 - not gzip after all: the import reports it
            return b""
    return raw


def is_har(src: Source) -> bool:
    """A ``.har`` name, or a JSON document starting with ``{"log": {``."""
    name = src.name.lower().removesuffix(".gz")
    return name.endswith(".har") or bool(_HAR_HEAD.match(_head(src)))


def _post_params(post: Any) -> dict[str, str]:
    if not isinstance(post, dict):
        return {}
    mime = str(post.get("mimeType") or "")
    text = post.get("text")
    if isinstance(text, str) and text:
        return body_params(text, mime)
    out: dict[str, str] = {}
    for p in post.get("params") or []:
        if isinstance(p, dict) and isinstance(p.get("name"), str):
            value = str(p.get("value") or "")
            if "multipart" in mime.lower():
                out[p["name"]] = value
            else:
                out[unquote_plus(p["name"])] = unquote_plus(value)
    return out


def _started(entry: dict[str, Any]) -> float | None:
    text = entry.get("startedDateTime")
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def hits(doc: Any, label: str) -> tuple[list[Hit], int]:
    """The Pixel hits of a HAR document and how many requests it has."""
    entries = doc.get("log", {}).get("entries") if isinstance(doc, dict) and isinstance(doc.get("log"), dict) \
        else None
    if not isinstance(entries, list):
        raise IngestError(f"{label}: is not a HAR (no log.entries list). Export it again with DevTools' "
                          "'Save all as HAR'.")
    out: list[Hit] = []
    for entry in entries:
        req = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(req, dict) or not isinstance(req.get("url"), str) or not is_pixel_path(req["url"]):
            continue
        at = _started(entry) or 0.0
        params = dict(parse_qsl(urlsplit(req["url"]).query, keep_blank_values=True))
        params.update(_post_params(req.get("postData")))
        hit = hit_from_params(params, method=str(req.get("method") or "GET"), at=at)
        if hit is not None:
            out.append(hit)
    return out, len(entries)


def row(hit: Hit) -> dict[str, Any]:
    """The browser-log row of one hit."""
    t = hit.ts_ms // 1000 if hit.ts_ms is not None else (int(hit.at) if hit.at else None)
    r: dict[str, Any] = {"event_name": hit.event_name, "event_id": hit.event_id, "event_time": t,
                         "event_source_url": hit.url, "pixel_id": hit.pixel_id, "fbp": hit.fbp, "fbc": hit.fbc}
    r.update({k: hit.custom_data[k] for k in CUSTOM_KEYS if hit.custom_data.get(k)})
    # the rest of the Pixel's custom data as its cd[...] columns: kept, and read by the privacy finding
    # (a shop copying the billing email into cd[user_data]; issue 24)
    r.update({f"cd[{k}]": v for k, v in hit.custom_data.items() if k not in CUSTOM_KEYS and v})
    r.update({k: hit.user_data[k] for k in USER_DATA_KEYS if hit.user_data.get(k)})
    return {k: v for k, v in r.items() if v is not None}


def as_browser_log(src: Source, role_value: str) -> tuple[Source, list[str]]:
    """``src`` unchanged when it is not a HAR; else its Pixel hits as JSON Lines, and a note for the
    import report. A HAR given as a server log is an error naming the fix."""
    if not is_har(src):
        return src, []
    label = f"{role_value} log '{src.name}'"
    if role_value != "browser":
        raise IngestError(f"{label}: is a HAR (a browser's network log); pass it as the browser log "
                          "(--browser), and the server's send log as --server.")
    try:
        doc = json.loads(_bytes(src).decode("utf-8-sig"))
    except (OSError, ValueError) as e:
        raise IngestError(f"{label}: looks like a HAR but is not valid JSON ({str(e).splitlines()[0]}). "
                          "Export it again.") from None
    found, requests = hits(doc, label)
    if not found:
        raise IngestError(f"{label}: a HAR of {requests} requests without a Pixel hit (a /tr request with id "
                          "and ev). Record the session with the Pixel loaded, and keep 'Preserve log' on.")
    lines = "\n".join(json.dumps(row(h), ensure_ascii=False) for h in found) + "\n"
    note = f"read as a HAR: {len(found)} Pixel hit(s) among {requests} request(s)"
    return replace(src, path=None, data=lines.encode("utf-8")), [note]
