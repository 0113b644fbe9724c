"""What the local Graph stand-in answers to the two reads: the Pixel (connect check) and
``dataset_quality`` (Meta's own figures). Meta-shaped bodies (``docs/meta-examples.md`` §C, §D), selected by
the Pixel / dataset ID, so one running stand-in offers every scenario:

==================  ===========================  =========================================================
ID                  Pixel name                   ``dataset_quality`` answer
==================  ===========================  =========================================================
the stand-in's      ``pixel_name`` (default      every section for PageView, ViewContent, AddToCart,
``pixel_id``        "capi-diag demo Pixel")      InitiateCheckout and Purchase (figures near the demo logs')
(1234567890)
1234567891          "capi-diag staging Pixel"    sections missing: Purchase has only Event Match Quality
                                                 (without diagnostics), AddToCart only event coverage,
                                                 PageView only data freshness
1234567892          "Agency sandbox Pixel"       AddToCart and Purchase with the ``dedup_key_feedback``
                                                 spelling (the field table's), never fired
1234567893          "capi-diag monitor scenario  the scenario of :mod:`capi_diag.standins.scenario` at the
                    Pixel"                       stand-in's clock (``/stats`` too; the other Pixels' ``/stats``
                                                 are the scenario's normal hours)
1234567899          (refused)                    missing permission: the Pixel read answers 200 "(#200)
                                                 Missing Permissions", ``dataset_quality`` answers 10
any other ID        (refused)                    100/33 "Object with ID ... does not exist"
==================  ===========================  =========================================================

``FakeGraph(pixel_unavailable=True)`` makes its own Pixel answer ``is_unavailable: true``. A wrong token
answers 190 and no token 104, before any of these. ``fields`` is honoured like Graph
does: only the requested fields come back, and an unknown field of a quality entry is refused with
100 "Tried accessing nonexisting field". The figures are the stand-in's own (Meta's examples where
they exist), not measurements.
"""

from __future__ import annotations

import copy
from typing import Any

PARTIAL_ID = "1234567891"
DEDUP_SPELLING_ID = "1234567892"
NO_PERMISSION_ID = "1234567899"
SCENARIO_ID = "1234567893"

NAMES: dict[str, str] = {PARTIAL_ID: "capi-diag staging Pixel", DEDUP_SPELLING_ID: "Agency sandbox Pixel",
                         SCENARIO_ID: "capi-diag monitor scenario Pixel"}
PIXEL_FIELDS = frozenset({"id", "name", "last_fired_time", "is_unavailable", "creation_time", "code"})
QUALITY_FIELDS = frozenset({
    "event_name", "event_match_quality", "event_coverage", "dedupe_key_feedback", "dedup_key_feedback",
    "data_freshness", "acr", "event_potential_aly_acr_increase", "event_spend", "event_ad_sets",
})


def _share(pct: float, description: str | None = None) -> dict[str, Any]:
    return {"percentage": pct} if description is None else {"percentage": pct, "description": description}


def _key(identifier: str, coverage: float, uplift: float | None = None, event: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"identifier": identifier, "coverage": {"percentage": coverage}}
    if uplift is not None:
        shown = identifier.replace("_", " ").title().replace("Ip ", "IP ")
        out["potential_aly_acr_increase"] = _share(
            uplift, f"Similar advertisers who sent valid {shown} for {event} saw a {uplift}% median increase in "
                    "their existing additional conversions reported.")
    return out


_COVERAGE_TEXT = ("The percentage of events received from your Conversions API compared to unique browser events "
                  "from the Meta Pixel.")
_FRESHNESS_TEXT = "The average frequency with which instances of this event are received through the Conversions API."


def _coverage(pct: float, uplift: float | None, event: str) -> dict[str, Any]:
    out: dict[str, Any] = {"percentage": pct, "goal_percentage": 75, "description": _COVERAGE_TEXT}
    if uplift is not None:
        out["potential_aly_acr_increase"] = _share(
            uplift, f"Similar advertisers who send the same {event} pixel events with matching deduplication keys "
                    f"through Conversions API saw a median of {uplift}% additional conversions reported versus "
                    "those that only used Meta Pixel.")
    return out


def _dedupe(event_id: tuple[float, float, float], external_id: tuple[float, float, float],
            fbp: tuple[float, float, float]) -> list[dict[str, Any]]:
    return [{"dedupe_key": key, "browser_events_with_dedupe_key": {"percentage": b},
             "server_events_with_dedupe_key": {"percentage": s},
             "overall_browser_coverage_from_dedupe_key": {"percentage": c}}
            for key, (b, s, c) in (("event_id", event_id), ("external_id", external_id), ("fbp", fbp))]


def _freshness(freq: str) -> dict[str, Any]:
    return {"upload_frequency": freq, "description": _FRESHNESS_TEXT}


def _acr(pct: float, event: str) -> dict[str, Any]:
    return _share(pct, f"In the last 7 days, you saw about {pct}% more conversions reported for {event} events by "
                       "using the Conversions API alongside the Meta Pixel.")


def _potential(pct: float, event: str) -> dict[str, Any]:
    return _share(pct, f"Similar advertisers who set up Conversions API for {event} events saw a median of {pct}% "
                       "additional conversions reported versus those that only used Meta Pixel.")


_IP_DIAGNOSTIC = {
    "name": "Server sending mismatched IP addresses",
    "description": "Your server is sending client IP addresses that do not match those from Meta Pixel. This may "
                   "affect the attribution and optimization of your ad campaigns.",
    "solution": "In your server payload, send the client_ip_address retrieved from customer interactions. Do not "
                "send the IP address of your server.",
    "percentage": 61.5, "affected_event_count": 19567, "total_event_count": 31830,
}
_IPV6_DIAGNOSTIC = {
    "name": "Update your IPv4 IP addresses to IPv6 IP addresses",
    "description": "Your server is sending IPv4 addresses while the Meta Pixel receives IPv6 addresses for the "
                   "same events.",
    "solution": "Send the IPv6 address when the visitor has one.",
    "percentage": 59.5, "affected_event_count": 18930, "total_event_count": 31830,
}


def _full() -> list[dict[str, Any]]:
    """Every section, for the demo's event names (close to the demo logs' own figures, with a few
    differences a comparison must explain)."""
    return [
        {"event_name": "PageView",
         "event_match_quality": {"composite_score": 5.8, "match_key_feedback": [
             _key("email", 18.1), _key("ip_address", 100), _key("user_agent", 100), _key("external_id", 18.8),
             _key("browser_id", 86.0)], "diagnostics": []},
         "event_coverage": _coverage(93.2, 12.4, "PageView"),
         "dedupe_key_feedback": _dedupe((98.9, 99.0, 93.2), (18.0, 18.8, 0.4), (97.5, 86.0, 0.1)),
         "data_freshness": _freshness("real_time"),
         "acr": _acr(4.2, "PageView"), "event_potential_aly_acr_increase": _potential(3.1, "PageView")},
        {"event_name": "ViewContent",
         "event_match_quality": {"composite_score": 5.6, "match_key_feedback": [
             _key("email", 17.6), _key("ip_address", 99.9), _key("user_agent", 100), _key("external_id", 18.4)],
             "diagnostics": []},
         "event_coverage": _coverage(95.0, 10.2, "ViewContent"),
         "dedupe_key_feedback": _dedupe((99.0, 99.0, 95.0), (18.2, 18.4, 0.3), (97.0, 85.4, 0.2)),
         "data_freshness": _freshness("real_time"),
         "acr": _acr(6.8, "ViewContent")},
        {"event_name": "AddToCart",
         "event_match_quality": {"composite_score": 6.2, "match_key_feedback": [
             _key("email", 16.9, 58.96, "AddToCart"), _key("ip_address", 99.0, 20.65, "AddToCart"),
             _key("user_agent", 100), _key("external_id", 16.9)], "diagnostics": []},
         "event_coverage": _coverage(34.1, 35.8, "AddToCart"),
         "dedupe_key_feedback": _dedupe((99.4, 99.5, 34.1), (16.9, 16.9, 0.5), (97.0, 89.9, 0.2)),
         "data_freshness": _freshness("real_time"),
         "acr": _acr(12.5, "AddToCart")},
        {"event_name": "InitiateCheckout",
         "event_match_quality": {"composite_score": 5.9, "match_key_feedback": [
             _key("email", 15.9), _key("ip_address", 98.2), _key("user_agent", 100)], "diagnostics": []},
         "event_coverage": _coverage(96.0, None, "InitiateCheckout"),
         "dedupe_key_feedback": _dedupe((100, 99.1, 96.0), (17.0, 16.8, 0.0), (95.7, 87.6, 0.0)),
         "data_freshness": _freshness("real_time")},
        {"event_name": "Purchase",
         "event_match_quality": {"composite_score": 7.4, "match_key_feedback": [
             _key("email", 96.5, 58.96, "Purchase"), _key("ip_address", 96.5, 20.65, "Purchase"),
             _key("user_agent", 100), _key("external_id", 100), _key("phone", 80.7), _key("lead_id", 3.5)],
             "diagnostics": [_IP_DIAGNOSTIC, _IPV6_DIAGNOSTIC]},
         "event_coverage": _coverage(76.0, 8.3, "Purchase"),
         "dedupe_key_feedback": _dedupe((100, 100, 76.0), (100, 100, 1.2), (82.0, 82.5, 0.0)),
         "data_freshness": _freshness("hourly"),
         "acr": _acr(37.9, "Purchase"), "event_potential_aly_acr_increase": _potential(32.9, "Purchase")},
    ]


def _partial() -> list[dict[str, Any]]:
    """Sections missing: each event carries only one of them."""
    return [
        {"event_name": "Purchase",
         "event_match_quality": {"composite_score": 6.9, "match_key_feedback": [
             _key("email", 95.0), _key("ip_address", 97.0)]}},
        {"event_name": "AddToCart", "event_coverage": {"percentage": 71.0, "goal_percentage": 75}},
        {"event_name": "PageView", "data_freshness": _freshness("hourly")},
    ]


def _dedup_spelling() -> list[dict[str, Any]]:
    """The ``dedup_key_feedback`` spelling of the Dataset Quality field table."""
    return [
        {"event_name": "AddToCart",
         "dedup_key_feedback": _dedupe((100, 100, 14.8), (100, 100, 15.96), (0, 0, 0)),
         "event_coverage": _coverage(34.1, None, "AddToCart")},
        {"event_name": "Purchase",
         "dedup_key_feedback": _dedupe((100, 0, 0), (100, 0, 0), (90.0, 0, 0)),
         "event_coverage": _coverage(0, None, "Purchase")},
    ]


def quality_web(dataset_id: str, main_pixel: str) -> tuple[list[dict[str, Any]], str] | None:
    """``(web entries, dedupe field spelling)`` for a dataset the stand-in knows, else ``None``."""
    if dataset_id == main_pixel:
        return _full(), "dedupe_key_feedback"
    if dataset_id == PARTIAL_ID:
        return _partial(), "dedupe_key_feedback"
    if dataset_id == DEDUP_SPELLING_ID:
        return _dedup_spelling(), "dedup_key_feedback"
    return None


def parse_fields(text: str) -> dict[str, Any]:
    """Graph's field expansion ``web{a,b{c}}`` -> ``{"web": {"a": None, "b": {"c": None}}}``;
    :class:`ValueError` when the braces do not balance."""
    pos = 0

    def level() -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        name = ""
        while pos < len(text):
            ch = text[pos]
            pos += 1
            if ch == "{":
                if not name.strip():
                    raise ValueError("a '{' without a field name")
                out[name.strip()] = level()
                name = ""
            elif ch == "}":
                if name.strip():
                    out[name.strip()] = None
                return out
            elif ch == ",":
                if name.strip():
                    out[name.strip()] = None
                name = ""
            else:
                name += ch
        if name.strip():
            out[name.strip()] = None
        return out

    tree = level()
    if pos < len(text):
        raise ValueError("unbalanced '}'")
    depth = 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            raise ValueError("unbalanced '}'")
    if depth:
        raise ValueError("unbalanced '{'")
    return tree


def select(value: Any, tree: dict[str, Any] | None) -> Any:
    """``value`` with only the fields of ``tree`` (``None``: everything), like Graph's ``fields``."""
    if tree is None:
        return copy.deepcopy(value)
    if isinstance(value, list):
        return [select(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: select(v, tree[k]) for k, v in value.items() if k in tree}
    return value


def unknown_quality_fields(tree: dict[str, Any]) -> list[str]:
    """Fields asked of a quality entry (inside ``web{...}``) that the node does not have."""
    web = tree.get("web")
    if not isinstance(web, dict):
        return []
    return [k for k in web if k not in QUALITY_FIELDS]
