"""The event-log contract: canonical fields, their types and the header forms accepted for each.

One contract serves both roles, ``browser`` (Pixel-side logs) and ``server`` (CAPI logs). This
module is the single source of column names: the import maps every accepted header to a canonical
name here, the analyses read only canonical names, and docs/input-format.md's table is generated from
:func:`contract_rows`.

Canonical tables (``browser_events`` and ``server_events``) have flat column names, no dots:

* bookkeeping: ``source_file`` (the file name, never its folder), ``file_index`` (0-based order of
  the file in the import), ``line`` (1-based line of the row in its file; for CSV the header is line 1),
* ``event_time`` as integer UTC seconds, ``event_time_raw`` (the text as found) and
  ``event_time_raw_unit`` (``s``, ``ms``, ``us`` or ``iso``), ``sent_at`` likewise,
* every ``user_data`` key as a list of strings (a cell may hold one value or a JSON array),
* ``custom_data`` keys as text (``value`` keeps its text so that the contract check can tell
  ``129,95`` from ``129.95``), ``custom_data_extra`` holding any other custom keys as JSON text,
* consent purposes as ``consent_<purpose>`` with values ``granted`` / ``denied`` / null,
* ``extra``: unknown columns of the row as a JSON object (kept, and listed in the import report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from capi_diag.core.patterns import USER_DATA_KEYS


class Role(str, Enum):
    """Which side of the pair a log comes from."""

    BROWSER = "browser"
    SERVER = "server"

    @property
    def table(self) -> str:
        return f"{self.value}_events"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)
"""The roles' names in their order (browser, then server), as analyses loop over them."""


class Kind(str, Enum):
    """How a canonical field is stored."""

    TEXT = "VARCHAR"
    LIST = "VARCHAR[]"
    INT = "BIGINT"
    BOOL = "BOOLEAN"


@dataclass(frozen=True)
class Field:
    """One canonical field and the header forms that map to it (compared case-sensitively first,
    then ignoring case)."""

    name: str
    kind: Kind
    group: str
    aliases: tuple[str, ...] = field(default=())
    description: str = ""


CUSTOM_DATA_KEYS: tuple[str, ...] = (
    "value", "currency", "contents", "content_ids", "content_type", "order_id", "num_items",
)
CONSENT_PURPOSES: tuple[str, ...] = (
    "ad_storage", "ad_user_data", "ad_personalization", "analytics_storage",
)
TOP_LEVEL_FIELDS: tuple[str, ...] = (
    "action_source", "event_source_url", "referrer_url", "opt_out", "data_processing_options",
    "data_processing_options_country", "data_processing_options_state",
)

ACTION_SOURCES: tuple[str, ...] = (
    "email", "website", "app", "phone_call", "chat", "physical_store", "system_generated",
    "business_messaging", "other",
)
STANDARD_EVENTS: tuple[str, ...] = (
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration", "Contact",
    "CustomizeProduct", "Donate", "FindLocation", "InitiateCheckout", "Lead", "Purchase",
    "Schedule", "Search", "StartTrial", "SubmitApplication", "Subscribe", "ViewContent", "PageView",
)

MS_THRESHOLD = 100_000_000_000
"""A numeric ``event_time`` at or above this is Unix milliseconds."""
US_THRESHOLD = 100_000_000_000_000
"""A numeric ``event_time`` at or above this is Unix microseconds."""
PLAUSIBLE_MIN = 946_684_800
"""2000-01-01T00:00:00Z: an earlier time after conversion is rejected as implausible."""
PLAUSIBLE_MAX = 4_102_444_800
"""2100-01-01T00:00:00Z: a later time after conversion is rejected as implausible."""


def _nested(group: str, key: str, *extra: str) -> tuple[str, ...]:
    return (f"{group}.{key}", f"{group}_{key}", key, *extra)


PLUGIN_ALIASES: dict[str, tuple[tuple[str, str], ...]] = {
    # facebook/facebook-for-woocommerce, includes/Events/Event.php (prepare_user_data): the plugin fills
    # user_data 'click_id' (get_click_id(): the _fbc cookie) and 'browser_id' (get_browser_id(): the
    # _fbp cookie), renamed to fbc / fbp only when the request is built; it also renames the Pixel's
    # country key 'cn' to 'country'. Logs taken before those steps carry the internal names.
    "fbp": (("user_data.browser_id", "Facebook for WooCommerce"), ("user_data_browser_id", "Facebook for WooCommerce")),
    "fbc": (("user_data.click_id", "Facebook for WooCommerce"), ("user_data_click_id", "Facebook for WooCommerce")),
    "country": (("user_data.cn", "Facebook for WooCommerce / Pixel advanced matching"),
                ("user_data_cn", "Facebook for WooCommerce / Pixel advanced matching")),
    # a Pixel /tr hit's page URL and referrer (docs: pixel-har-stats, "dl" / "rl" parameters)
    "event_source_url": (("dl", "Meta Pixel hit"),),
    "referrer_url": (("rl", "Meta Pixel hit"),),
}
"""Header forms that are another tool's internal name for a canonical field, with that tool: accepted
after the field's own forms (so the real name wins when both are present), and named in the import
report's warnings when used."""
PLUGIN_ALIAS_SOURCE: dict[str, str] = {a: src for forms in PLUGIN_ALIASES.values() for a, src in forms}


def _build_fields() -> tuple[Field, ...]:
    fields: list[Field] = [
        Field("event_name", Kind.TEXT, "event", ("event_name", "event", "eventName"),
              "Standard or custom event name; compared exactly for dedup."),
        Field("event_id", Kind.TEXT, "event", ("event_id", "eventID", "eventId"),
              "Dedup id; always text (`00123` stays `00123`)."),
        Field("event_time", Kind.INT, "event", ("event_time", "timestamp", "time", "eventTime"),
              "Unix s / ms / µs, or ISO-8601; stored as integer UTC seconds."),
    ]
    for name in TOP_LEVEL_FIELDS:
        fields.append(Field(name, Kind.TEXT, "event", (name,)))
    for key in USER_DATA_KEYS:
        fields.append(Field(key, Kind.LIST, "user_data", _nested("user_data", key),
                            "One value or a JSON array of values."))
    for key in CUSTOM_DATA_KEYS:
        desc = "JSON text." if key == "contents" else ""
        fields.append(Field(key, Kind.TEXT, "custom_data", _nested("custom_data", key), desc))
    for purpose in CONSENT_PURPOSES:
        fields.append(Field(f"consent_{purpose}", Kind.TEXT, "consent",
                            (f"consent.{purpose}", f"consent_{purpose}", purpose),
                            "`granted`/`denied` (also true/false, 1/0, yes/no)."))
    fields.append(Field("consent_region", Kind.TEXT, "consent",
                        ("consent.region", "consent_region", "region"),
                        "ISO 3166-1 alpha-2 region of the visitor."))
    fields.append(Field("sent_at", Kind.INT, "envelope", ("sent_at", "sentAt"),
                        "When the server request was sent; same formats as event_time."))
    fields.append(Field("test_event_code", Kind.TEXT, "envelope", ("test_event_code",)))
    fields.append(Field("pixel_id", Kind.TEXT, "envelope", ("pixel_id", "pixelId", "dataset_id")))
    return tuple(Field(f.name, f.kind, f.group, f.aliases + tuple(a for a, _ in PLUGIN_ALIASES.get(f.name, ())),
                       f.description) for f in fields)


FIELDS: tuple[Field, ...] = _build_fields()
FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
REQUIRED: tuple[str, ...] = ("event_name", "event_time")

BOOKKEEPING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_file", "VARCHAR"),
    ("file_index", "INTEGER"),
    ("line", "BIGINT"),
    ("event_time_raw", "VARCHAR"),
    ("event_time_raw_unit", "VARCHAR"),
    ("event_time_tz_missing", "BOOLEAN"),
    ("sent_at_raw", "VARCHAR"),
    ("custom_data_extra", "VARCHAR"),
    ("extra", "VARCHAR"),
)


def canonical_columns() -> list[tuple[str, str]]:
    """``(name, duckdb_type)`` for every column of a canonical table, in table order. ``row_id`` is
    unique within a table (the import's insertion order: files in order, rows in file order); joins
    and per-row measures use it, since several events of one JSON Lines request body share a line."""
    cols = [("row_id", "BIGINT"), ("source_file", "VARCHAR"), ("file_index", "INTEGER"), ("line", "BIGINT")]
    for f in FIELDS:
        cols.append((f.name, f.kind.value))
        if f.name == "event_time":
            cols += [("event_time_raw", "VARCHAR"), ("event_time_raw_unit", "VARCHAR"),
                     ("event_time_tz_missing", "BOOLEAN")]
        if f.name == "sent_at":
            cols.append(("sent_at_raw", "VARCHAR"))
    cols += [("custom_data_extra", "VARCHAR"), ("extra", "VARCHAR")]
    return cols


def _alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for f in FIELDS:
        for alias in f.aliases:
            index.setdefault(alias, f.name)
    return index


ALIASES: dict[str, str] = _alias_index()
ALIASES_FOLDED: dict[str, str] = {}
for _alias, _name in ALIASES.items():
    ALIASES_FOLDED.setdefault(_alias.lower(), _name)


def canonical_name(header: str) -> str | None:
    """The canonical field a header maps to, or ``None`` for an unknown column.

    Exact alias first, then the alias ignoring case and surrounding spaces (``Event_Name``).
    """
    if header in ALIASES:
        return ALIASES[header]
    return ALIASES_FOLDED.get(header.strip().lower())


def is_custom_data_header(header: str) -> str | None:
    """The custom key of a ``custom_data.<key>`` / ``custom_data_<key>`` header not in the contract."""
    for prefix in ("custom_data.", "custom_data_"):
        if header.startswith(prefix) and len(header) > len(prefix):
            return header[len(prefix):]
    return None


def contract_rows() -> list[tuple[str, str, str, str]]:
    """``(canonical, type, accepted headers, notes)`` rows for the table of docs/input-format.md."""
    return [(f.name, f.kind.value, ", ".join(f"`{a}`" for a in f.aliases), f.description)
            for f in FIELDS]


# The two optional inputs beside the logs (:mod:`capi_diag.io.orders` imports them).
ORDERS_TABLE = "capi_orders"
SENDS_TABLE = "capi_sends"
ORDERS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("row_id", "BIGINT"), ("source_file", "VARCHAR"), ("file_index", "INTEGER"), ("line", "BIGINT"),
    ("order_id", "VARCHAR"), ("created_at", "BIGINT"), ("created_at_raw", "VARCHAR"), ("total", "VARCHAR"),
    ("currency", "VARCHAR"), ("status", "VARCHAR"),
)
SENDS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("row_id", "BIGINT"), ("source_file", "VARCHAR"), ("file_index", "INTEGER"), ("line", "BIGINT"),
    ("request_id", "VARCHAR"), ("position", "INTEGER"), ("sent_at", "BIGINT"), ("pixel_id", "VARCHAR"),
    ("event_name", "VARCHAR"), ("event_id", "VARCHAR"), ("event_time", "BIGINT"), ("order_id", "VARCHAR"),
    ("value", "VARCHAR"), ("currency", "VARCHAR"), ("http_status", "INTEGER"), ("accepted", "BOOLEAN"),
    ("events_sent", "INTEGER"), ("events_received", "INTEGER"), ("error_code", "INTEGER"),
    ("error_subcode", "INTEGER"), ("error_message", "VARCHAR"), ("fbtrace_id", "VARCHAR"),
    ("messages", "VARCHAR"), ("server_row_id", "BIGINT"),
)
"""``server_row_id``: the server log's row the answer belongs to, when the answers came as response
columns of the server log (null for a send log)."""


# Meta's time limits, and the tolerance capi-diag adds where Meta documents none.
MAX_EVENT_AGE_S = 604_800
"""Meta rejects a server event whose ``event_time`` is more than 7 days old (docs/facts.md §2)."""
DEDUP_WINDOW_S = 172_800
"""Meta merges a browser and a server event with the same name and id within 48 hours (docs/facts.md §3)."""
FUTURE_TOLERANCE_S = 60
"""How far in the future an ``event_time`` may be (RudderStack's 1 minute; Meta documents none)."""
