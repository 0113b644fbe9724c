"""The analyst's words: one table from every internal id to the label people read.

Findings, defects, reasons, categories, checklist items, sections, statuses, severities, import
rejection reasons and example-table columns all have a stable id (``stale_over_7d``,
``em.unhashed``, ``client_user_agent.non_browser``, ``not_evaluated``). The JSON report keeps the
ids (scripts key on them); the dashboard, its charts and the Markdown/HTML reports show
:func:`label` instead. Meta's own parameter names (``event_id``, ``fbp``, ``sent_at``) are the
analyst's vocabulary and stay as they are; the short user_data codes are spelled out once
(:data:`FIELD_CODES`, :func:`field_legend`).

No streamlit here: the CLI's reports use the same table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from capi_diag.core import fmt
from capi_diag.core.schema import DEDUP_WINDOW_S, FUTURE_TOLERANCE_S, MAX_EVENT_AGE_S

SECTIONS: dict[str, str] = {
    "inputs": "Inputs",
    "dedup": "Dedup pairing",
    "timing": "Timing",
    "match_keys": "Match keys",
    "emq": "Event Match Quality estimate",
    "consent": "Consent",
    "contract": "Payload contract",
    "journey": "Funnel journey",
    "delivery": "Delivery (Meta's answers)",
    "reconciliation": "Orders reconciliation",
    "orders_delivery": "Orders & delivery",
    "checklist": "Pre-launch checklist",
    "consent_contract": "Consent & contract",
    "import": "Import",
    "filters": "Filters",
    "privacy": "Personal data outside user_data",
}

STATUSES: dict[str, str] = {
    "fail": "Fail", "warn": "Warning", "pass": "Pass", "not_evaluated": "Not evaluated",
    "evaluated": "Evaluated", "error": "Error",
}
SEVERITIES: dict[str, str] = {"error": "Error", "warning": "Warning"}
ROLES: dict[str, str] = {"browser": "Browser (Pixel)", "server": "Server (CAPI)", "both": "Both logs",
                         "orders": "Orders export", "sends": "Meta's answers (send log)"}

FIELDS: dict[str, str] = {
    "em": "Email", "ph": "Phone", "fn": "First name", "ln": "Last name", "ge": "Gender",
    "db": "Date of birth", "ct": "City", "st": "State", "zp": "ZIP / postal code", "country": "Country",
    "external_id": "External ID", "fbp": "Browser ID (fbp)", "fbc": "Click ID (fbc)",
    "client_ip_address": "IP address", "client_user_agent": "User agent",
    "subscription_id": "Subscription ID", "fb_login_id": "Facebook Login ID", "lead_id": "Lead ID",
    "anon_id": "Install ID", "madid": "Mobile advertiser ID",
}
"""The user_data fields in words (Meta's names for them)."""

FIELD_CODES: dict[str, str] = {
    "em": "email", "ph": "phone", "fn": "first name", "ln": "last name", "ge": "gender",
    "db": "date of birth", "ct": "city", "st": "state", "zp": "ZIP code", "country": "country",
    "external_id": "your customer ID", "fbp": "browser ID cookie", "fbc": "click ID cookie",
}
"""What Meta's short user_data codes stand for (spelled out once where codes appear)."""

DEFECTS: dict[str, str] = {
    "unhashed": "sent unhashed",
    "uppercase_hash": "hashed in upper-case hex",
    "hashed_empty": "is the hash of an empty value",
    "hashed_placeholder": "is the hash of a placeholder",
    "surrounding_whitespace": "has spaces around the hash",
    "placeholder": "is a placeholder such as 'undefined'",
    "not_normalized": "hashed without normalizing",
    "hashed": "hashed (must be sent raw)",
    "malformed": "malformed",
    "private": "is a private or internal address",
    "non_browser": "not from a browser",
    "missing_with_fbclid": "missing although the page URL has an fbclid",
    "modified_fbclid": "carries a modified fbclid",
    "repeated_value": "repeats one value on many rows",
    "paired_mismatch": "differs between browser and server",
    "paired_gap": "on one side of a pair only",
}
"""A user_data defect as the words after the field's label: "Email" + "sent unhashed"."""

FINDINGS: dict[str, str] = {
    # reconciliation: the waterfall's buckets and its findings; delivery
    "not_sent": "Not sent by either log",
    "refused": "Refused by Meta",
    "counted_twice": "Counted twice",
    "unlikely_match": "Unlikely to match",
    "counted_once": "Counted once",
    "currency_mismatch": "Currency differs from the order",
    "purchase_without_order": "Purchase naming no order of the export",
    "rejected": "Rejected by Meta",
    # dedup: outcomes and why keys do not pair
    "keys": "Dedup keys",
    "paired": "Paired",
    "outside_window": "In both logs, too far apart",
    "browser_only": "Browser only",
    "server_only": "Server only",
    "name_case_mismatch": "Event name differs only in case",
    "browser_name_case_mismatch": "Event name differs only in case (browser side)",
    "different_ids_probable": "Event ID generated twice (probable)",
    "browser_different_ids_probable": "Event ID generated twice (probable, browser side)",
    "server_only_unexplained": "Server only, no browser event",
    "browser_only_unexplained": "Browser only, never sent by the server",
    "browser_missing_event_id": "Browser rows without event ID",
    "server_missing_event_id": "Server rows without event ID",
    "duplicate_browser_rows": "Sent twice by the browser",
    "duplicate_server_rows": "Sent twice by the server",
    "reused_event_id": "Event ID reused for different actions",
    "reused_event_id_browser": "Event ID reused (browser log)",
    "reused_event_id_server": "Event ID reused (server log)",
    "fallback_mergeable_server_rows": "Fallback dedup possible",
    "fallback_by_fbp": "Fallback dedup by browser ID",
    "fallback_by_external_id": "Fallback dedup by external ID",
    "pairing_rate": "Pairing rate",
    "browser_coverage": "Browser coverage",
    "server_coverage": "Server coverage",
    "browser_rows": "Browser rows",
    "server_rows": "Server rows",
    # timing
    "skew_p50_s": "Median skew",
    "skew_p95_abs_s": "Skew, 95th percentile",
    "skew_max_abs_s": "Largest skew",
    "skew_over_threshold": "Browser and server times too far apart",
    "skew_whole_hours": "Skewed by whole hours (time-zone bug)",
    "event_time_in_ms": "event_time in milliseconds",
    "event_time_in_us": "event_time in microseconds (µs)",
    "stale_over_7d": "Sent more than 7 days late",
    "future": "event_time in the future when sent",
    "sent_at_missing": "sent_at missing",
    "meta_keeps_browser": "Meta keeps the browser copy",
    "meta_keeps_server": "Meta keeps the server copy",
    "delivery_delay_p50_s": "Median delivery delay",
    "delivery_delay_p95_s": "Delivery delay, 95th percentile",
    "delivery_delay_within_1h_share": "Delivered within 1 hour",
    # consent
    "forwarded_without_consent": "Forwarded without consent",
    "consent_unknown": "Consent unknown",
    "consent_ok": "Consent as required",
    "unrecognized_region_rows": "Unrecognized region code",
    # contract
    "purchase_missing_value": "Purchase without value",
    "purchase_missing_currency": "Purchase without currency",
    "value_not_numeric": "Value not a number",
    "currency_invalid": "Currency not an ISO 4217 code",
    "value_mismatch": "Browser and server value differ",
    "action_source_invalid": "action_source missing or invalid",
    "event_source_url_missing": "Website event without event_source_url",
    "nonstandard_event_name": "Standard event misspelled",
    "test_event_code_present": "Test event code in the log",
    "insufficient_user_data": "Not enough customer information",
    # emq and journey
    "below_emq_target": "Below the EMQ target",
    "estimate": "EMQ estimate",
    "missing_steps": "Funnel steps missing",
    # privacy
    "personal_data_in_url": "Email or phone in a URL",
    "personal_data_in_custom_data": "Email or phone in custom data",
    "personal_data_in_unknown_column": "Email or phone in an unmapped column",
    "personal_data_rows": "Rows with an email or phone outside user_data",
    "url_rows": "Rows with an email or phone in a URL",
    "custom_data_rows": "Rows with an email or phone in custom data",
    "unknown_column_rows": "Rows with an email or phone in an unmapped column",
    "email_rows": "Rows with a raw email",
    "phone_rows": "Rows with a raw phone number",
}
"""Every finding, count and figure of the report sections."""

UNITS: dict[str, str] = {
    **dict.fromkeys(("keys", "paired", "outside_window", "browser_only", "server_only", "name_case_mismatch",
                     "different_ids_probable", "server_only_unexplained", "browser_only_unexplained",
                     "skew_over_threshold", "skew_whole_hours", "meta_keeps_browser", "meta_keeps_server",
                     "browser_name_case_mismatch", "browser_different_ids_probable"), "dedup key"),
    **dict.fromkeys(("browser_missing_event_id", "duplicate_browser_rows"), "browser row"),
    **dict.fromkeys(("server_missing_event_id", "duplicate_server_rows", "event_time_in_ms", "event_time_in_us",
                     "stale_over_7d", "future", "sent_at_missing", "forwarded_without_consent",
                     "consent_unknown", "unrecognized_region_rows", "purchase_missing_value",
                     "purchase_missing_currency", "value_not_numeric", "currency_invalid",
                     "action_source_invalid", "event_source_url_missing", "nonstandard_event_name",
                     "test_event_code_present", "insufficient_user_data", "below_emq_target",
                     "fallback_mergeable_server_rows"), "server row"),
    "reused_event_id": "event ID", "reused_event_id_browser": "event ID", "reused_event_id_server": "event ID",
    "value_mismatch": "Purchase pair",
}
"""What each count counts: dedup keys (an event name + event ID) or rows of a log."""

REJECTIONS: dict[str, str] = {
    "malformed_row": "Row cannot be parsed",
    "event_name_empty": "event_name empty",
    "event_time_empty": "event_time empty",
    "event_time_unreadable": "event_time not a time",
    "event_time_implausible": "event_time before 2000 or after 2099",
    "order_id_empty": "Order id empty",
    "created_at_empty": "Order time empty",
    "created_at_unreadable": "Order time not a time",
    "created_at_implausible": "Order time before 2000 or after 2099",
}
"""Why the import rejected a row."""

TIME_FORMATS: dict[str, str] = {
    "s": "Unix seconds", "ms": "Unix milliseconds (ms)", "us": "Unix microseconds (µs)", "iso": "ISO-8601 text",
}

COLUMNS: dict[str, str] = {
    "section": "Analysis", "finding": "Finding", "severity": "Severity", "role": "Log", "detail": "Detail",
    "source_file": "File", "file_index": "File #", "line": "Line", "category": "Outcome", "reason": "Reason",
    "partner_event_name": "Twin's event name", "partner_event_id": "Twin's event ID",
    "first_time": "First seen", "browser_time": "Browser time", "server_time": "Server time",
    "skew_s": "Skew", "delay_s": "Delay", "offset_h": "Offset (hours)", "copy": "Copy",
    "browser_source_file": "Browser file", "browser_line": "Browser line",
    "server_source_file": "Server file", "server_line": "Server line",
    "event_time_raw": "event_time as sent", "region": "Region", "pixel_id": "Pixel ID",
    "event_time_raw_unit": "event_time format", "event_time_tz_missing": "ISO time without a time zone",
    "sent_at_raw": "sent_at as sent", "extra": "Other columns", "custom_data_extra": "Other custom_data",
    "rows": "Rows", "value": "Value",
    "stage": "Where it was lost", "order_id": "Order", "created_at": "Ordered", "total": "Order total",
    "browser_rows": "Browser rows", "server_rows": "Server rows", "sends": "Server sends",
    "field": "Field", "browser_fbp": "Browser fbp", "server_fbp": "Server fbp",
    "sends_accepted": "Sends accepted",
}
"""Column names of example rows, failing rows and lookups."""

TIME_COLUMNS = frozenset({"first_time", "browser_time", "server_time", "event_time", "sent_at", "created_at"})
"""Example-row columns holding Unix seconds (shown as UTC date and time)."""
DURATION_COLUMNS = frozenset({"skew_s", "delay_s"})
"""Example-row columns holding a duration in seconds."""
ID_COLUMNS = frozenset({"line", "browser_line", "server_line", "file_index", "copy", "event_time_raw",
                        "offset_h", "pixel_id"})
"""Example-row columns holding identifiers or raw values (never thousands separators)."""
ID_VALUE_COLUMNS = frozenset({"category", "reason", "finding", "section", "severity", "role", "stage"})
"""Columns whose values are ids themselves (shown through :func:`label`)."""

_TABLES: tuple[Mapping[str, str], ...] = (SECTIONS, STATUSES, SEVERITIES, FINDINGS, REJECTIONS, COLUMNS)


CHECKLIST_ITEMS: dict[str, str] = {
    "journey_complete": "Every funnel step in both logs",
    "event_name_casing": "Standard event names spelled exactly",
    "action_source": "action_source set and valid",
    "event_source_url": "event_source_url on website events",
    "test_event_code": "No test event code in production",
    "event_time_unit": "event_time in seconds",
    "freshness_stale": "No event sent more than {stale} late",
    "freshness_future": "No event_time in the future",
    "delivery_delay": "Events delivered promptly",
    "event_ids_present": "event_id on every event",
    "event_id_reuse": "No event_id reused for different actions",
    "duplicate_server_sends": "Each server event sent once",
    "pairing_rate": "Browser and server events pair",
    "timing_skew": "Browser and server times agree",
    "consent": "No event forwarded without consent",
    "unhashed_pii": "Customer information hashed",
    "hashed_context_keys": "Context keys not hashed",
    "context_key_format": "fbp, fbc, IP and user agent well formed",
    "hash_quality": "Hashes normalized and lowercase",
    "insufficient_user_data": "Enough customer information per event",
    "coverage_em": "Email coverage",
    "coverage_ph": "Phone coverage",
    "coverage_external_id": "External ID coverage",
    "coverage_fbp": "Browser ID (fbp) coverage",
    "coverage_fbc": "Click ID (fbc) coverage (ad clicks)",
    "coverage_client_ip_address": "IP address coverage",
    "coverage_client_user_agent": "User agent coverage",
    "emq_estimate": "Estimated Event Match Quality",
    "purchase_value_currency": "Purchase value and currency",
    "purchase_value_match": "Browser and server Purchase values agree",
    "orders_reach_meta": "Every order reaches Meta",
    "server_sends_accepted": "Server sends accepted by Meta",
    "order_values_match": "Purchase values equal the order totals",
    "no_personal_data_outside_user_data": "No personal data in URLs or custom data",
}
"""Checklist item titles, in go-live order; ``{stale}``, ``{future}`` and ``{window}`` stand for the
limits in force (:func:`capi_diag.verdict.checklist.limits`)."""

DEFAULT_LIMIT_WORDS: dict[str, str] = {
    "stale": fmt.duration(MAX_EVENT_AGE_S), "future": fmt.duration(FUTURE_TOLERANCE_S),
    "window": fmt.duration(DEDUP_WINDOW_S),
}
"""The limits' words under the default configuration."""


def _checklist_titles() -> dict[str, str]:
    return {ident: title.format(**DEFAULT_LIMIT_WORDS) for ident, title in CHECKLIST_ITEMS.items()}


def field(code: str) -> str:
    """A user_data field in words: ``em`` -> ``Email``; an unknown code unchanged."""
    return FIELDS.get(code, code)


def field_with_code(code: str) -> str:
    """``Email (em)``: the words with the code the logs use (codes that are words stay alone)."""
    words = FIELDS.get(code)
    if words is None or code in words or code == words.lower():
        return words or code
    return f"{words} ({code})"


def defect(field_code: str | None, defect_id: str) -> str:
    """``("em", "unhashed")`` -> ``Email sent unhashed``; without a field, the defect alone."""
    words = DEFECTS.get(defect_id) or humanize(defect_id).lower()
    if not field_code:
        return words[:1].upper() + words[1:]
    return f"{field(field_code)} {words}"


def label(ident: str | None, *, section: str | None = None) -> str:
    """The analyst's label of any id: a finding, count, checklist item, section, status, severity,
    rejection reason, example column, or a ``field.defect`` pair (``em.unhashed``). Checklist ids
    (some are also field names, such as ``action_source``) are read as such with
    ``section="checklist"``."""
    if ident is None:
        return ""
    ident = str(ident)
    if section == "checklist":
        titles = _checklist_titles()
        if ident in titles:
            return titles[ident]
    for table in _TABLES:
        if ident in table:
            return table[ident]
    if "." in ident:
        code, _, d = ident.partition(".")
        if code in FIELDS and (d in DEFECTS or d.replace(" ", "_") in DEFECTS):
            return defect(code, d.replace(" ", "_"))
    if ident in FIELDS:
        return FIELDS[ident]
    if ident in DEFECTS:
        return defect(None, ident)
    return humanize(ident)


def unit(ident: str) -> str:
    """What a count counts (``dedup key``, ``server row``, ``browser row``...); ``row`` by default."""
    if "." in ident:
        return "server row"
    return UNITS.get(ident, "row")


def humanize(ident: str) -> str:
    """The fallback for an id not in the table: ``foo_bar`` -> ``Foo bar`` (tests keep it unused)."""
    text = re.sub(r"[_.]+", " ", str(ident)).strip()
    return text[:1].upper() + text[1:]


def field_legend(codes: list[str] | tuple[str, ...] | None = None) -> str:
    """``em = email, ph = phone, ...``: the codes spelled out once, for a caption or a report."""
    codes = list(codes or FIELD_CODES)
    return ", ".join(f"{c} = {FIELD_CODES[c]}" for c in codes if c in FIELD_CODES)


def column(name: str) -> str:
    """A table column in words: example and failing-row columns, counts named like findings
    (``browser_rows``); Meta's own field names unchanged."""
    return COLUMNS.get(name) or FINDINGS.get(name) or name


def known_ids() -> set[str]:
    """Every id this table labels (the identifier-scan test forbids them on pages and in reports)."""
    ids = set().union(*(set(t) for t in _TABLES))
    ids |= set(_checklist_titles()) | set(DEFECTS) | set(TIME_FORMATS)
    ids |= {f"{f}.{d}" for f in FIELDS for d in DEFECTS}
    return ids


FIELD_FIX: dict[str, str] = {
    "em": "Send the customer's email (from login, checkout or the lead form) as user_data.em: trimmed, "
          "lowercased, SHA-256 hashed.",
    "ph": "Send the phone number as user_data.ph: digits only with the country code (16505551212), "
          "no leading zeros, SHA-256 hashed.",
    "fn": "Send the first name as user_data.fn: lowercased, no punctuation, SHA-256 hashed.",
    "ln": "Send the last name as user_data.ln: lowercased, no punctuation, SHA-256 hashed.",
    "ge": "Send gender as user_data.ge: 'f' or 'm', SHA-256 hashed.",
    "db": "Send the date of birth as user_data.db: YYYYMMDD, SHA-256 hashed.",
    "ct": "Send the city as user_data.ct: lowercased, no spaces or punctuation, SHA-256 hashed.",
    "st": "Send the state as user_data.st: 2-letter code lowercased for the US (ca), SHA-256 hashed.",
    "zp": "Send the zip code as user_data.zp: lowercased, no spaces or dash (US: 5 digits), SHA-256 hashed.",
    "country": "Send the country as user_data.country: ISO 3166-1 alpha-2 lowercased (us), SHA-256 hashed, "
               "even when all customers are in one country.",
    "external_id": "Send your own stable user or customer id as user_data.external_id, the same value "
                   "the Pixel sends (hashing it is recommended).",
    "fbp": "Forward the _fbp cookie of the visitor's request as user_data.fbp, unmodified and unhashed.",
    "fbc": "Forward the _fbc cookie, or build fb.1.<ms>.<fbclid> from the landing page's fbclid, as "
           "user_data.fbc, unhashed (only visitors who came from an ad have one).",
    "client_ip_address": "Forward the visitor's public IP (first public X-Forwarded-For entry, IPv6 "
                         "preferred) as user_data.client_ip_address, unhashed.",
    "client_user_agent": "Forward the visitor's browser User-Agent header as user_data.client_user_agent, "
                         "unhashed.",
}
"""How to send each match key right (the fix the match-key and EMQ sections quote)."""
