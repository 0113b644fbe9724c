"""Demo data: a realistic pair of browser (Pixel) and server (CAPI) logs with a known defect mix.

``python -m capi_diag sample --out DIR [--sessions N] [--seed S] [--format csv|jsonl|parquet]``
writes ``browser_events.<ext>``, ``server_events.<ext>`` and ``manifest.json`` (ground truth).

How the data is made (all of it in DuckDB SQL, so a million events take seconds):

* **Sessions** of one shop spread over the three days before a fixed reference time (not the wall
  clock), with a diurnal traffic curve in each visitor's local time. A session lands (PageView),
  may view 1-3 products (PageView + ViewContent each), add to cart, start checkout
  (PageView + InitiateCheckout) and buy (PageView + Purchase): a drop-off funnel.
* Every event exists once in the "truth" table. The **browser log** holds it when the Pixel could
  fire (no ad blocker, ad_storage granted); the **server log** holds it when the server sent it.
  Both sides share ``event_id`` (a UUID, the order number for Purchase) where done right.
* **Defects** are injected at the rates of :data:`MIX` (documented in docs/demo-data.md), each
  with the story of how it happens in real set-ups.
* Randomness is a hash of ``(seed, session/event, purpose)`` (DuckDB ``hash()``), never
  ``random()``: the same seed gives byte-identical files whatever the thread count.
* ``manifest.json`` holds the ground truth *measured by SQL over the generated rows* with the
  definitions of the diagnostics (dedup, timing, match_keys, consent, contract, journey), so the
  report can be checked against it number by number.

Hashes are real SHA-256 of Meta-normalized values; ``fbp``/``fbc`` follow
``fb.1.<13-digit ms>.<random>`` / ``fb.1.<ms>.<fbclid>``; IPs are public IPv4/IPv6 (from ISP-like
prefixes); user agents are real browser strings.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capi_diag.core.errors import UsageError
from capi_diag.core.patterns import HASH
from capi_diag.engine.db import Database

FORMATS = ("csv", "jsonl", "parquet")
DEFAULT_SESSIONS = 1500
DEFAULT_SEED = 7
REFERENCE_END = int(dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc).timestamp())
"""End of the browsing window (2026-11-20T00:00:00Z). Sessions start in the 3 days before it."""
WINDOW_S = 3 * 86400
TEST_CODE = "TEST48213"
TEST_WINDOW = (REFERENCE_END - 2 * 86400 + 10 * 3600, REFERENCE_END - 2 * 86400 + 10 * 3600 + 1200)
"""Server events with an event_time in this 20-minute window carry the leaked ``test_event_code``
(2026-11-18 10:00-10:20 UTC: a developer deployed with the Test Events code still set)."""
PIXEL_ID = "731845026493175"
SHOP = "https://shop.example.com"
SKEW_THRESHOLD_S = 300
HASH_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@dataclass(frozen=True)
class Rate:
    """One entry of the documented mix: ``rate`` of ``per`` is affected, and why it happens."""

    name: str
    rate: float
    per: str
    story: str


FUNNEL: dict[str, float] = {
    "ViewContent": 0.58,       # of sessions: view at least one product
    "AddToCart": 0.24,         # of product viewers
    "InitiateCheckout": 0.52,  # of carts
    "Purchase": 0.62,          # of checkouts
}
"""Step-to-step continuation probabilities of a session (purchase ~4.5% of sessions)."""

MIX: tuple[Rate, ...] = (
    Rate("pixel_blocked", 0.15, "sessions",
         "An ad blocker or tracking protection blocks fbevents.js: the server sends the session's events "
         "alone (server_only, no fbp)."),
    Rate("consent_denied_banner", 0.25, "sessions in EEA/GB",
         "The visitor rejects the consent banner (ad_storage and ad_user_data denied): the Pixel stays off."),
    Rate("consent_partial_banner", 0.05, "sessions in EEA/GB",
         "The visitor accepts cookies but not ad_user_data: the Pixel fires, the server forwards anyway."),
    Rate("consent_denied_optout", 0.03, "sessions elsewhere (US, CA, AU)",
         "Opt-out (Global Privacy Control): ad_storage and ad_user_data denied."),
    Rate("consent_ignored", 0.40, "denied sessions",
         "The server container forwards the session although ad_storage is denied "
         "(forwarded_without_consent)."),
    Rate("consent_missing", 0.03, "server events",
         "The consent platform had not loaded when the server event was built: consent fields empty."),
    Rate("server_dropped", 0.03, "events the server should send",
         "The server call timed out and was never retried: browser_only."),
    Rate("browser_missing_event_id", 0.01, "browser events",
         "A second, hard-coded Pixel snippet fires without eventID."),
    Rate("server_missing_event_id", 0.01, "server events", "A code path builds the event without event_id."),
    Rate("id_generated_twice", 0.30, "server AddToCart events",
         "The AJAX cart plugin generates its own event_id instead of reusing the Pixel's: different ids, "
         "same fbp, seconds apart (different_ids_probable)."),
    Rate("purchase_lowercase", 0.30, "server Purchase events",
         "Orders confirmed by the payment webhook are sent as `purchase` (name_case_mismatch), "
         "20-300 s after the order."),
    Rate("duplicate_send", 0.02, "server events",
         "A retry after a timeout sends the same event again 2-30 s later (duplicate_server_rows)."),
    Rate("event_time_ms", 0.015, "server events", "One service writes event_time in milliseconds."),
    Rate("late_event_time", 0.01, "server events",
         "A queue worker stamps event_time when it processes the event, 5-20 min late (skew > 300 s)."),
    Rate("stale_send", 0.005, "server events",
         "Replayed from a dead-letter queue more than 7 days later (Meta rejects the batch: 2804003)."),
    Rate("future_time", 0.004, "server events",
         "Local time (UTC+1) written as UTC: event_time one hour after sent_at."),
    Rate("em_unhashed", 0.01, "server events with em", "The raw e-mail address is sent unhashed."),
    Rate("em_uppercase_hash", 0.01, "server events with em", "The hash is upper-case hex."),
    Rate("em_multi_valued", 0.03, "sessions whose server events carry em",
         "Not a defect: two addresses (a JSON array) for customers with a work e-mail."),
    Rate("ph_hash_of_empty", 0.50, "server events with identity but no phone",
         "The code hashes an empty phone field: SHA-256 of \"\" (e3b0c442...)."),
    Rate("fbp_hashed", 0.01, "server events with fbp",
         "fbp is SHA-256 hashed like PII (context keys must not be)."),
    Rate("fbc_missing_on_landing", 0.25, "server landing PageViews of ad clicks",
         "The server fires before the _fbc cookie exists: the URL has fbclid= but fbc is empty."),
    Rate("server_user_agent", 0.02, "server events",
         "The server's own HTTP client UA (python-requests, node-fetch, ...) instead of the visitor's."),
    Rate("private_ip", 0.02, "server events",
         "The load balancer's private address (10.x, 172.16.x, 192.168.x, 127.0.0.1) instead of the "
         "visitor's."),
    Rate("bad_currency", 0.01, "server events with currency", "Currency written as `EURO`, `US$` or `€`."),
    Rate("value_comma", 0.01, "server events with value", "A locale-formatted value such as `129,95`."),
    Rate("purchase_missing_value", 0.03, "server Purchase events", "The order total was not passed."),
    Rate("browser_unreadable_time", 0.001, "browser events",
         "The export lost the timestamp (empty): the import rejects these rows (event_time_empty)."),
)
"""The documented defect mix. docs/demo-data.md lists the same table; a test keeps them in sync."""

RATES: dict[str, float] = {r.name: r.rate for r in MIX}

COUNTRIES = (
    # country, share of sessions, UTC offset (h), consent banner, currency, IPv4 /16 prefixes, IPv6 /32
    ("US", 0.50, -5, False, "USD", ("73.15", "98.207", "24.5", "67.180", "108.28"),
     ("2600:1700", "2601:646")),
    ("CA", 0.04, -5, False, "CAD", ("99.228", "174.112"), ("2607:fea8",)),
    ("AU", 0.03, 11, False, "AUD", ("101.160", "120.17"), ("2001:8003",)),
    ("GB", 0.10, 0, True, "GBP", ("81.98", "86.7", "82.132"), ("2a00:23c7",)),
    ("DE", 0.12, 1, True, "EUR", ("84.132", "91.64", "93.199", "87.123"), ("2a02:8108", "2003:e2")),
    ("FR", 0.09, 1, True, "EUR", ("90.3", "86.246", "92.154"), ("2a01:cb00",)),
    ("NL", 0.05, 1, True, "EUR", ("84.84", "77.161"), ("2a02:a440",)),
    ("ES", 0.04, 1, True, "EUR", ("83.52", "88.27"), ("2a0c:5a80",)),
    ("IT", 0.03, 1, True, "EUR", ("79.40", "93.44"), ("2a01:e11",)),
)

CITIES = (
    # country, city (Meta-normalized), state/region (normalized), postal codes, phone prefix, digits after
    ("US", "newyork", "ny", ("10001", "10025", "11215"), "1212", 7),
    ("US", "losangeles", "ca", ("90012", "90027", "90405"), "1213", 7),
    ("US", "chicago", "il", ("60601", "60614", "60647"), "1312", 7),
    ("US", "austin", "tx", ("78701", "78704", "78751"), "1512", 7),
    ("US", "seattle", "wa", ("98101", "98109", "98122"), "1206", 7),
    ("CA", "toronto", "on", ("m5v3l9", "m4c1b5", "m6g2l7"), "1416", 7),
    ("AU", "sydney", "nsw", ("2000", "2010", "2031"), "614", 8),
    ("GB", "london", "england", ("sw1a1aa", "ec1a1bb", "n16ah"), "447", 9),
    ("GB", "manchester", "england", ("m11ae", "m41bt", "m202rn"), "447", 9),
    ("DE", "berlin", "be", ("10115", "10437", "12043"), "4915", 9),
    ("DE", "münchen", "by", ("80331", "80802", "81541"), "4916", 9),
    ("DE", "hamburg", "hh", ("20095", "22767", "20357"), "4917", 9),
    ("FR", "paris", "iledefrance", ("75011", "75015", "75018"), "336", 8),
    ("FR", "lyon", "auvergnerhonealpes", ("69001", "69003", "69007"), "337", 8),
    ("NL", "amsterdam", "noordholland", ("1012ab", "1054cd", "1091ef"), "316", 8),
    ("ES", "madrid", "madrid", ("28004", "28012", "28045"), "346", 8),
    ("IT", "milano", "lombardia", ("20121", "20144", "20159"), "393", 9),
)

_HOUR_WEIGHTS = (2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 9, 10, 9, 7, 4)
"""Relative traffic per local hour of day (evening peak)."""

_FIRST = (("james", "james"), ("mary", "mary"), ("jose", "josé"), ("chloe", "chloé"), ("liam", "liam"),
          ("emma", "emma"), ("lukas", "lukas"), ("sofia", "sofia"), ("noah", "noah"), ("olivia", "olivia"),
          ("mateo", "mateo"), ("zoe", "zoë"), ("ethan", "ethan"), ("amelia", "amelia"), ("leon", "léon"),
          ("hannah", "hannah"), ("oliver", "oliver"), ("mia", "mia"), ("lucas", "lucas"), ("ava", "ava"))
_LAST = (("smith", "smith"), ("johnson", "johnson"), ("garcia", "garcia"), ("mueller", "müller"),
         ("martin", "martin"), ("brown", "brown"), ("rossi", "rossi"), ("dubois", "dubois"),
         ("jansen", "jansen"), ("lopez", "lópez"), ("wilson", "wilson"), ("schmidt", "schmidt"),
         ("taylor", "taylor"), ("bernard", "bernard"), ("devries", "devries"), ("fernandez", "fernández"),
         ("anderson", "anderson"), ("weber", "weber"), ("thomas", "thomas"), ("moore", "moore"))
_DOMAINS = ("gmail.com", "gmail.com", "outlook.com", "yahoo.com", "icloud.com", "hotmail.com", "gmx.de",
            "web.de", "orange.fr", "btinternet.com")

_DESKTOP_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
)
_MOBILE_UAS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/22B83 [FBAN/FBIOS;FBAV/491.0.0.42.109;FBBV/683413520;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;"
    "FBSV/18.1;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
)
_SERVER_UAS = ("python-requests/2.32.3", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
               "Go-http-client/2.0", "axios/1.7.7", "okhttp/4.12.0", "curl/8.5.0")
_PRIVATE_IP_PREFIXES = ("10.0.", "10.12.", "172.16.", "192.168.")
_BAD_CURRENCIES = ("EURO", "US$", "€")

_PRODUCTS = (
    ("SKU-1001", "merino-crew-sweater", 8900), ("SKU-1002", "linen-shirt", 5900),
    ("SKU-1003", "trail-runner-shoes", 12995), ("SKU-1004", "canvas-tote", 2495),
    ("SKU-1005", "waxed-jacket", 19900), ("SKU-1006", "wool-beanie", 1990),
    ("SKU-1007", "organic-tee", 2900), ("SKU-1008", "selvedge-jeans", 14900),
    ("SKU-1009", "leather-belt", 4999), ("SKU-1010", "down-vest", 12900),
    ("SKU-1011", "rain-shell", 15900), ("SKU-1012", "cotton-socks-3-pack", 1495),
    ("SKU-1013", "chino-shorts", 4900), ("SKU-1014", "hooded-sweatshirt", 7900),
    ("SKU-1015", "suede-sneakers", 11900), ("SKU-1016", "silk-scarf", 3900),
)
_CAMPAIGNS = ("black-friday-preview", "winter-essentials", "new-arrivals", "gift-guide")
_ORGANIC_LANDINGS = ("/", "/", "/collections/new-arrivals", "/collections/sale",
                     "/blogs/journal/layering-guide")

_SLOTS = (
    # slot, event, page position, seconds after the page view (min, span), depth needed, products needed
    (0, "PageView", 0, 0, 1, 1, 0),
    (1, "PageView", 1, 0, 1, 2, 1),
    (2, "ViewContent", 1, 1, 3, 2, 1),
    (3, "PageView", 2, 0, 1, 2, 2),
    (4, "ViewContent", 2, 1, 3, 2, 2),
    (5, "PageView", 3, 0, 1, 2, 3),
    (6, "ViewContent", 3, 1, 3, 2, 3),
    (7, "AddToCart", 4, 0, 1, 3, 0),
    (8, "PageView", 5, 0, 1, 4, 0),
    (9, "InitiateCheckout", 5, 1, 3, 4, 0),
    (10, "PageView", 6, 0, 1, 5, 0),
    (11, "Purchase", 6, 1, 4, 5, 0),
)
FUNNEL_STEPS = ("PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase")

SERVER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_name", "event_name"), ("event_id", "event_id"), ("event_time", "event_time_raw"),
    ("action_source", "action_source"), ("event_source_url", "url"),
    ("user_data.em", "em"), ("user_data.ph", "ph"), ("user_data.fn", "fn"), ("user_data.ln", "ln"),
    ("user_data.ct", "ct"), ("user_data.st", "st"), ("user_data.zp", "zp"), ("user_data.country", "country"),
    ("user_data.external_id", "external_id"), ("user_data.client_ip_address", "client_ip_address"),
    ("user_data.client_user_agent", "client_user_agent"), ("user_data.fbp", "fbp"), ("user_data.fbc", "fbc"),
    ("custom_data.value", "value"), ("custom_data.currency", "currency"),
    ("custom_data.content_ids", "content_ids"), ("custom_data.content_type", "content_type"),
    ("custom_data.num_items", "num_items"), ("custom_data.order_id", "order_id"),
    ("consent.ad_storage", "consent_ad_storage"), ("consent.ad_user_data", "consent_ad_user_data"),
    ("consent.region", "consent_region"), ("sent_at", "sent_at"), ("test_event_code", "test_event_code"),
    ("pixel_id", "pixel_id"),
)
"""Server CSV/Parquet header (Meta's dotted payload paths) -> internal column."""

BROWSER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event", "event_name"), ("eventID", "event_id"), ("timestamp", "event_time_raw"),
    ("event_source_url", "url"), ("fbp", "fbp"), ("fbc", "fbc"), ("client_user_agent", "client_user_agent"),
    ("em", "em"), ("external_id", "external_id"), ("value", "value"), ("currency", "currency"),
    ("content_ids", "content_ids"), ("content_type", "content_type"), ("num_items", "num_items"),
    ("ad_storage", "consent_ad_storage"), ("ad_user_data", "consent_ad_user_data"),
    ("region", "consent_region"), ("pixel_id", "pixel_id"),
)
"""Browser CSV/Parquet header: the Pixel's own names (``event``, ``eventID``, ``timestamp``), bare keys."""

_LIST_KEYS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "external_id")
"""The ``user_data`` keys the demo writes, as lists (it makes up no gender or date of birth)."""
_SCALAR_KEYS = ("client_ip_address", "client_user_agent", "fbp", "fbc")
"""The browser context keys the demo writes, as single values, in the order of its JSON events."""


def _lit(value: Any) -> str:
    """A SQL literal for a constant of this module (never user input)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows: Any) -> str:
    return ", ".join("(" + ", ".join(_lit(v) for v in row) + ")" for row in rows)


def _setup_sql(seed: int) -> list[str]:
    """Lookup tables and the random macros."""
    cum, countries = 0.0, []
    for code, share, tz, banner, cur, v4, v6 in COUNTRIES:
        n_cities = sum(1 for c in CITIES if c[0] == code)
        countries.append((code, cum, cum + share if code != COUNTRIES[-1][0] else 1.0, tz, banner, cur,
                          v4, v6, n_cities))
        cum += share
    hours, total, acc = [], sum(_HOUR_WEIGHTS), 0
    for h, w in enumerate(_HOUR_WEIGHTS):
        hours.append((h, acc / total, (acc + w) / total if h < 23 else 1.0))
        acc += w
    cities, idx = [], {}
    for country, city, st, zips, prefix, rest in CITIES:
        i = idx.get(country, 0)
        idx[country] = i + 1
        cities.append((country, i, city, st, zips, prefix, rest))
    return [
        # DuckDB combines the hashes of several arguments weakly (consecutive keys and different
        # tags come out correlated), so the combination is hashed again: a 64-bit mix per purpose.
        f"""CREATE OR REPLACE TEMP MACRO mix(k, tag) AS
            hash(hash(hash({int(seed)}::BIGINT, k::BIGINT), tag))""",
        "CREATE OR REPLACE TEMP MACRO rnd(k, tag) AS ((mix(k, tag) >> 11)::DOUBLE / 9007199254740992.0)",
        "CREATE OR REPLACE TEMP MACRO rint(k, tag, n) AS CAST(floor(rnd(k, tag) * n) AS BIGINT)",
        "CREATE OR REPLACE TEMP MACRO pick(l, k, tag) AS l[1 + rint(k, tag, len(l))]",
        "CREATE OR REPLACE TEMP MACRO money(c) AS printf('%d.%02d', c // 100, c % 100)",
        """CREATE OR REPLACE TEMP MACRO uuid_of(k, tag) AS printf('%08x-%04x-4%03x-%04x-%012x',
            mix(k, tag || '1') >> 32, (mix(k, tag || '1') >> 16) & 65535, mix(k, tag || '1') & 4095,
            ((mix(k, tag || '2') >> 48) & 16383) | 32768, mix(k, tag || '2') & 281474976710655)""",
        "CREATE OR REPLACE TEMP TABLE _country (country VARCHAR, lo DOUBLE, hi DOUBLE, tz INTEGER, "
        "banner BOOLEAN, currency VARCHAR, v4 VARCHAR[], v6 VARCHAR[], n_cities INTEGER, ix INTEGER)",
        f"INSERT INTO _country VALUES {_values([(*c, i) for i, c in enumerate(countries)])}",
        # an index computed by CASE and an equi-join: far faster than a range join per session
        "CREATE OR REPLACE TEMP MACRO country_ix(u) AS CASE "
        + " ".join(f"WHEN u < {c[2]!r} THEN {i}" for i, c in enumerate(countries))
        + f" ELSE {len(countries) - 1} END",
        "CREATE OR REPLACE TEMP MACRO hour_of(u) AS CASE "
        + " ".join(f"WHEN u < {h[2]!r} THEN {h[0]}" for h in hours) + " ELSE 23 END",
        "CREATE OR REPLACE TEMP TABLE _city (country VARCHAR, ci INTEGER, city VARCHAR, st VARCHAR, "
        "zips VARCHAR[], phone_prefix VARCHAR, phone_rest INTEGER)",
        f"INSERT INTO _city VALUES {_values(cities)}",
        f"CREATE OR REPLACE TEMP TABLE _slot AS SELECT * FROM (VALUES {_values(_SLOTS)}) "
        "t(slot, event_name, pos, sub_min, sub_span, need_depth, need_nvc)",
        # the slots of every (depth, products viewed) plan, for an equi-join from sessions
        "CREATE OR REPLACE TEMP TABLE _plan AS SELECT d.range AS depth, v.range AS nvc, sl.* "
        "FROM range(1, 6) d, range(0, 4) v, _slot sl "
        "WHERE d.range >= sl.need_depth AND v.range >= sl.need_nvc",
    ]


def sessions_sql(sessions: int, end: int) -> str:
    """The SQL that makes the generator's sessions table: ``sessions`` visits ending before ``end``
    (the benchmark's chunked generator runs it per chunk)."""
    f = FUNNEL
    start = end - WINDOW_S
    denied_or_partial = RATES["consent_denied_banner"] + RATES["consent_partial_banner"]
    n_prod = len(_PRODUCTS)
    return f"""
CREATE OR REPLACE TEMP TABLE _sess AS
WITH b0 AS (
    SELECT range AS sid, rnd(range, 'country') AS u_country, rnd(range, 'hour') AS u_hour
    FROM range({int(sessions)})
), b AS (
    -- the macros repeat their argument in every WHEN: give them a column, not an expression
    SELECT sid, country_ix(u_country) AS ix, hour_of(u_hour) AS hour FROM b0
), g AS (
    SELECT b.sid, c.country, c.tz, c.banner, c.currency, b.hour,
           pick(c.v4, b.sid, 'v4p') AS v4_prefix, pick(c.v6, b.sid, 'v6p') AS v6_prefix,
           rint(b.sid, 'city', c.n_cities) AS ci
    FROM b JOIN _country c USING (ix)
), a AS (
    SELECT g.*, ci_.city, ci_.st, pick(ci_.zips, g.sid, 'zip') AS zip, ci_.phone_prefix, ci_.phone_rest,
        rnd(sid, 'mobile') < 0.62 AS mobile,
        {start} + ((rint(sid, 'day', 3) * 86400 + hour * 3600 + rint(sid, 'sec', 3600) - tz * 3600)
                   % {WINDOW_S} + {WINDOW_S}) % {WINDOW_S} AS start,
        20 + rint(sid, 'pace', 100) AS pace,
        rnd(sid, 'adclick') < 0.30 AS ad_click,
        rnd(sid, 'blocked') < {RATES['pixel_blocked']} AS pixel_blocked,
        rnd(sid, 'login') < 0.20 AS logged_in,
        rnd(sid, 'returning') < 0.35 AS is_returning,
        rnd(sid, 'phone') < 0.70 AS has_phone,
        rnd(sid, 'f2') < {f['ViewContent']} AS r2,
        rnd(sid, 'f3') < {f['AddToCart']} AS r3,
        rnd(sid, 'f4') < {f['InitiateCheckout']} AS r4,
        rnd(sid, 'f5') < {f['Purchase']} AS r5,
        rnd(sid, 'nvc2') < 0.45 AS v2, rnd(sid, 'nvc3') < 0.40 AS v3,
        rint(sid, 'p1', {n_prod}) AS p1,
        rnd(sid, 'consent') AS u_consent,
        rnd(sid, 'cign') < {RATES['consent_ignored']} AS consent_ignored,
        rnd(sid, 'v6') AS u_v6,
        rint(sid, 'fn', {len(_FIRST)}) AS fn_i, rint(sid, 'ln', {len(_LAST)}) AS ln_i,
        rnd(sid, 'multi') < {RATES['em_multi_valued']} AS em_multi
    FROM g JOIN _city ci_ ON ci_.country = g.country AND ci_.ci = g.ci
), d AS (
    SELECT a.*,
        1 + r2::INT + (r2 AND r3)::INT + (r2 AND r3 AND r4)::INT + (r2 AND r3 AND r4 AND r5)::INT AS depth,
        CASE WHEN banner THEN CASE WHEN u_consent < {RATES['consent_denied_banner']} THEN 'denied'
                                   WHEN u_consent < {denied_or_partial}
                                   THEN 'partial' ELSE 'granted' END
             ELSE CASE WHEN u_consent < {RATES['consent_denied_optout']} THEN 'denied' ELSE 'granted' END
        END AS consent_state,
        {_lit([p[0] for p in _FIRST])}[1 + fn_i] AS fn_a, {_lit([p[1] for p in _FIRST])}[1 + fn_i] AS fn_n,
        {_lit([p[0] for p in _LAST])}[1 + ln_i] AS ln_a, {_lit([p[1] for p in _LAST])}[1 + ln_i] AS ln_n,
        (p1 + 1 + rint(sid, 'p2', {n_prod - 1})) % {n_prod} AS p2
    FROM a
), e AS (
    SELECT d.*,
        CASE WHEN depth >= 2 THEN 1 + v2::INT + (v2 AND v3)::INT ELSE 0 END AS nvc,
        (p2 + 1 + rint(sid, 'p3', {n_prod - 2})) % {n_prod} AS p3_raw,
        fn_a || '.' || ln_a || CASE WHEN rnd(sid, 'emn') < 0.5 THEN (10 + rint(sid, 'emn2', 90))::VARCHAR
                                    ELSE '' END || '@' || pick({_lit(_DOMAINS)}, sid, 'dom') AS email,
        fn_a || '.' || ln_a || '@' || pick(['acme-corp.com', 'globex.io', 'initech.net'], sid,
            'work') AS work_email,
        phone_prefix || lpad(rint(sid, 'phn', 10 ** phone_rest)::VARCHAR, phone_rest, '0') AS phone,
        'cus_' || (100000 + rint(sid, 'cus', 900000))::VARCHAR AS customer,
        (start * 1000 + rint(sid, 'fbpms', 1000)
            - CASE WHEN is_returning THEN 86400000 + rint(sid, 'fbpage', 5184000000) ELSE 0 END) AS fbp_ms,
        CASE WHEN ad_click THEN 'IwAR' || replace(replace(rtrim(to_base64(unhex(sha256(sid::VARCHAR
            || ':' || '{start}'
            || ':' || rnd(sid, 'clid')::VARCHAR))), '='), '+', '-'), '/', '_') END AS fbclid,
        CASE WHEN ad_click THEN '/collections/' || pick({_lit(_CAMPAIGNS)}, sid, 'camp')
             ELSE pick({_lit(_ORGANIC_LANDINGS)}, sid, 'land') END AS landing_path
    FROM d
)
SELECT e.* EXCLUDE (p3_raw, v4_prefix, v6_prefix),
    CASE WHEN p3_raw = p1 THEN (p3_raw + 1) % {n_prod} ELSE p3_raw END AS p3,
    CASE WHEN depth >= 3 THEN least(nvc, 1 + (rnd(sid, 'ni2') < 0.35)::INT + (rnd(sid, 'ni3') < 0.35)::INT)
         ELSE 0 END AS num_items,
    CASE WHEN mobile THEN pick({_lit(_MOBILE_UAS)}, sid, 'ua') ELSE pick({_lit(_DESKTOP_UAS)}, sid,
        'ua') END AS ua,
    CASE WHEN u_v6 < CASE WHEN mobile THEN 0.45 ELSE 0.25 END
         THEN v6_prefix || printf(':%x:%x:%x:%x:%x:%x', rint(sid, 'g1', 65536),
              rint(sid, 'g2', 65536), rint(sid, 'g3', 65536), rint(sid, 'g4', 65536),
              rint(sid, 'g5', 65536), 1 + rint(sid, 'g6', 65535))
         ELSE v4_prefix || '.' || rint(sid, 'o3', 256)::VARCHAR || '.'
              || (1 + rint(sid, 'o4', 254))::VARCHAR END AS ip,
    'fb.1.' || fbp_ms::VARCHAR || '.' || (1000000000 + rint(sid, 'fbpr', 1147483647))::VARCHAR AS fbp,
    CASE WHEN ad_click THEN 'fb.1.' || (start * 1000 + rint(sid, 'fbcms', 1000))::VARCHAR || '.'
        || fbclid END AS fbc,
    {_lit(SHOP)} || landing_path || CASE WHEN ad_click THEN '?utm_source=facebook&utm_medium=paid_social'
        || '&utm_campaign=' || replace(landing_path, '/collections/', '') || '&fbclid=' || fbclid
        ELSE '' END AS landing_url,
    'ORD-' || (100000 + sid)::VARCHAR AS order_id,
    -- SHA-256 of the Meta-normalized values, once per session that ever identifies itself
    CASE WHEN logged_in OR depth = 5 THEN sha256(lower(email)) END AS h_em,
    CASE WHEN (logged_in OR depth = 5) AND em_multi THEN sha256(lower(work_email)) END AS h_work,
    CASE WHEN (logged_in OR depth = 5) AND has_phone THEN sha256(phone) END AS h_ph,
    CASE WHEN logged_in OR depth = 5 THEN sha256(fn_n) END AS h_fn,
    CASE WHEN logged_in OR depth = 5 THEN sha256(ln_n) END AS h_ln,
    CASE WHEN logged_in OR depth = 5 THEN sha256(customer) END AS h_ext,
    CASE WHEN depth = 5 THEN sha256(city) END AS h_ct,
    CASE WHEN depth = 5 THEN sha256(st) END AS h_st,
    CASE WHEN depth = 5 THEN sha256(zip) END AS h_zp,
    CASE WHEN depth = 5 THEN sha256(lower(country)) END AS h_country
FROM e
"""


_EVENTS_SQL = """
CREATE OR REPLACE TEMP TABLE _ev AS
WITH x AS (
    SELECT s.sid, s.num_items, s.landing_url, s.order_id, s.logged_in, sl.slot, sl.event_name, sl.pos,
        s.sid * 16 + sl.slot AS k,
        CASE sl.slot WHEN 1 THEN s.p1 WHEN 2 THEN s.p1 WHEN 3 THEN s.p2 WHEN 4 THEN s.p2
                     WHEN 5 THEN s.p3 WHEN 6 THEN s.p3 WHEN 7 THEN s.p1 END AS prod,
        s.start + sl.pos * s.pace
            + CASE WHEN sl.pos > 0 THEN rint(s.sid * 16 + sl.pos, 'jit', s.pace // 2) ELSE 0 END
            + sl.sub_min + rint(s.sid * 16 + sl.slot, 'sub', sl.sub_span) AS t,
        {prices}[1 + s.p1] + CASE WHEN s.num_items >= 2 THEN {prices}[1 + s.p2] ELSE 0 END
            + CASE WHEN s.num_items >= 3 THEN {prices}[1 + s.p3] ELSE 0 END AS cart_cents,
        list_slice([{skus}[1 + s.p1], {skus}[1 + s.p2], {skus}[1 + s.p3]], 1, s.num_items) AS cart_skus
    FROM _sess s JOIN _plan sl USING (depth, nvc)
)
SELECT sid, slot, k, event_name, pos, t,
    CASE WHEN slot = 0 THEN landing_url
         WHEN slot BETWEEN 1 AND 7 THEN '{shop}/products/' || {slugs}[1 + prod]
         WHEN slot IN (8, 9) THEN '{shop}/checkout'
         ELSE '{shop}/checkout/thank-you?order=' || order_id END AS url,
    CASE WHEN event_name IN ('ViewContent', 'AddToCart') THEN {prices}[1 + prod]
         WHEN event_name = 'InitiateCheckout' THEN cart_cents
         WHEN event_name = 'Purchase' THEN cart_cents + CASE WHEN cart_cents < 5000 THEN 490 ELSE 0 END
    END AS value_cents,
    CASE WHEN event_name IN ('ViewContent', 'AddToCart') THEN to_json([{skus}[1 + prod]])::VARCHAR
         WHEN event_name IN ('InitiateCheckout', 'Purchase')
             THEN to_json(cart_skus)::VARCHAR END AS content_ids,
    CASE WHEN event_name IN ('InitiateCheckout', 'Purchase') THEN num_items::VARCHAR END AS num_items_text,
    CASE WHEN event_name = 'Purchase' THEN order_id ELSE uuid_of(k, 'eid') END AS shared_id,
    logged_in OR event_name = 'Purchase' AS has_identity
FROM x
"""

_BROWSER_SQL = """
CREATE OR REPLACE TEMP TABLE _browser AS
WITH b AS (
    SELECT *,
        rnd(k, 'b_noid') < {r_noid} AS no_id,
        rnd(k, 'b_notime') < {r_notime} AS no_time
    FROM _ev JOIN _sess USING (sid)
    WHERE NOT pixel_blocked AND consent_state <> 'denied'
)
SELECT
    sid, slot, k, t, no_time AS unreadable,
    event_name,
    CASE WHEN NOT no_id THEN shared_id END AS event_id,
    t AS event_time,
    CASE WHEN NOT no_time THEN strftime(make_timestamp(t * 1000000),
        '%Y-%m-%dT%H:%M:%SZ') END AS event_time_raw,
    url,
    fbp, CASE WHEN ad_click THEN fbc END AS fbc, ua AS client_user_agent,
    CASE WHEN has_identity THEN [h_em] END AS em,
    CASE WHEN logged_in THEN [h_ext] END AS external_id,
    CASE WHEN value_cents IS NOT NULL THEN money(value_cents) END AS value,
    CASE WHEN value_cents IS NOT NULL THEN currency END AS currency,
    content_ids,
    CASE WHEN content_ids IS NOT NULL THEN 'product' END AS content_type,
    num_items_text AS num_items,
    'granted' AS consent_ad_storage,
    CASE WHEN consent_state = 'granted' THEN 'granted' ELSE 'denied' END AS consent_ad_user_data,
    country AS consent_region,
    '{pixel}' AS pixel_id
FROM b
"""

_SERVER_SQL = """
CREATE OR REPLACE TEMP TABLE _server AS
WITH s0 AS (
    SELECT *,
        rnd(k, 's_noid') < {r_noid} AS no_id,
        event_name = 'AddToCart' AND rnd(k, 's_twice') < {r_twice} AS id_twice,
        event_name = 'Purchase' AND rnd(k, 's_webhook') < {r_webhook} AS webhook,
        rnd(k, 's_dup') < {r_dup} AS dup,
        rnd(k, 's_ms') < {r_ms} AS in_ms,
        rnd(k, 's_late') < {r_late} AS late,
        rnd(k, 's_stale') < {r_stale} AS stale,
        rnd(k, 's_future') < {r_future} AS future,
        rnd(k, 's_em') AS u_em,
        rnd(k, 's_phe') < {r_phe} AS ph_empty,
        rnd(k, 's_fbph') < {r_fbph} AS fbp_hashed,
        slot = 0 AND ad_click AND rnd(k, 's_fbc') < {r_fbc} AS fbc_missing,
        rnd(k, 's_ua') < {r_ua} AS server_ua,
        rnd(k, 's_ip') < {r_ip} AS private_ip,
        rnd(k, 's_cmiss') < {r_cmiss} AS consent_missing,
        rnd(k, 's_cur') < {r_cur} AS bad_currency,
        rnd(k, 's_comma') < {r_comma} AS comma,
        event_name = 'Purchase' AND rnd(k, 's_noval') < {r_noval} AS no_value,
        CASE WHEN rnd(k, 's_batch') < 0.10 THEN rint(k, 's_delay', 600) ELSE 1 + rint(k, 's_delay',
            4) END AS delay
    FROM _ev JOIN _sess USING (sid)
    WHERE rnd(k, 's_drop') >= {r_drop} AND (consent_state <> 'denied' OR consent_ignored)
), s1 AS (
    SELECT s0.*,
        t + CASE WHEN future THEN 3600 WHEN late THEN 301 + rint(k, 's_lag', 900) ELSE rint(k, 's_skew',
            3) END
            AS server_t,
        CASE WHEN webhook THEN 20 + rint(k, 's_hook', 280) ELSE 0 END AS hook_delay
    FROM s0
), s2 AS (
    SELECT s1.*,
        CASE WHEN stale THEN server_t + 604800 + 3600 + rint(k, 's_old', 172800)
             WHEN future THEN t + delay + hook_delay
             ELSE server_t + delay + hook_delay END AS sent0
    FROM s1
), c AS (SELECT range AS copy FROM range(2))
SELECT
    sid, slot, k, t, copy,
    CASE WHEN webhook THEN 'purchase' ELSE event_name END AS event_name,
    CASE WHEN no_id THEN NULL WHEN id_twice THEN uuid_of(k, 'regen') ELSE shared_id END AS event_id,
    server_t AS event_time,
    CASE WHEN in_ms THEN (server_t * 1000 + rint(k, 's_msec', 1000))::VARCHAR ELSE server_t::VARCHAR END
        AS event_time_raw,
    CASE WHEN in_ms THEN 'ms' ELSE 's' END AS event_time_unit,
    'website' AS action_source,
    url,
    CASE WHEN has_identity THEN
        CASE WHEN u_em < {r_em_raw} THEN [upper(email[1]) || email[2:]]
             WHEN u_em < {r_em_raw} + {r_em_upper} THEN [upper(h_em)]
             ELSE [h_em] END
        || CASE WHEN em_multi THEN [h_work] ELSE [] END
    END AS em,
    CASE WHEN has_identity AND has_phone THEN [h_ph]
         WHEN has_identity AND ph_empty THEN ['{hash_empty}'] END AS ph,
    CASE WHEN has_identity THEN [h_fn] END AS fn,
    CASE WHEN has_identity THEN [h_ln] END AS ln,
    CASE WHEN event_name = 'Purchase' THEN [h_ct] END AS ct,
    CASE WHEN event_name = 'Purchase' THEN [h_st] END AS st,
    CASE WHEN event_name = 'Purchase' THEN [h_zp] END AS zp,
    CASE WHEN event_name = 'Purchase' THEN [h_country] END AS country,
    CASE WHEN has_identity THEN [h_ext] END AS external_id,
    CASE WHEN private_ip THEN CASE WHEN rnd(k, 's_lo') < 0.1 THEN '127.0.0.1'
             ELSE pick({private}, k, 's_pp') || rint(k, 's_p3', 32)::VARCHAR || '.'
                  || (1 + rint(k, 's_p4', 254))::VARCHAR END
         ELSE ip END AS client_ip_address,
    CASE WHEN server_ua THEN pick({server_uas}, k, 's_uas') ELSE ua END AS client_user_agent,
    CASE WHEN pixel_blocked THEN NULL WHEN fbp_hashed THEN sha256(fbp) ELSE fbp END AS fbp,
    CASE WHEN ad_click AND NOT fbc_missing THEN fbc END AS fbc,
    CASE WHEN value_cents IS NULL OR no_value THEN NULL
         WHEN comma THEN replace(money(value_cents), '.', ',') ELSE money(value_cents) END AS value,
    CASE WHEN value_cents IS NULL THEN NULL WHEN bad_currency THEN pick({bad_cur}, k, 's_bc')
         ELSE currency END AS currency,
    content_ids,
    CASE WHEN content_ids IS NOT NULL THEN 'product' END AS content_type,
    num_items_text AS num_items,
    CASE WHEN event_name = 'Purchase' THEN order_id END AS order_id,
    CASE WHEN consent_missing THEN NULL WHEN consent_state = 'denied' THEN 'denied' ELSE 'granted' END
        AS consent_ad_storage,
    CASE WHEN consent_missing THEN NULL WHEN consent_state = 'granted' THEN 'granted' ELSE 'denied' END
        AS consent_ad_user_data,
    country AS consent_region,
    sent0 + copy * (2 + rint(k, 's_retry', 29)) AS sent_at,
    CASE WHEN server_t >= {tw0} AND server_t < {tw1} THEN '{test_code}' END AS test_event_code,
    '{pixel}' AS pixel_id,
    has_identity AND NOT has_phone AS no_phone_identity
FROM s2 JOIN c ON c.copy = 0 OR s2.dup
"""


def _render(sql: str, **kw: Any) -> str:
    for key, val in kw.items():
        sql = sql.replace("{" + key + "}", str(val))
    return sql


def _generate(db: Database, *, sessions: int, seed: int, end: int) -> None:
    for stmt in _setup_sql(seed):
        db.execute(stmt)
    db.execute(sessions_sql(sessions, end))
    db.execute(_render(_EVENTS_SQL, shop=SHOP, skus=_lit([p[0] for p in _PRODUCTS]),
                       slugs=_lit([p[1] for p in _PRODUCTS]), prices=_lit([p[2] for p in _PRODUCTS])))
    db.execute(_render(_BROWSER_SQL, r_noid=RATES["browser_missing_event_id"],
                       r_notime=RATES["browser_unreadable_time"], pixel=PIXEL_ID))
    db.execute(_render(
        _SERVER_SQL, seed=int(seed), pixel=PIXEL_ID, hash_empty=HASH_EMPTY, test_code=TEST_CODE,
        tw0=TEST_WINDOW[0], tw1=TEST_WINDOW[1],
        r_noid=RATES["server_missing_event_id"], r_twice=RATES["id_generated_twice"],
        r_webhook=RATES["purchase_lowercase"], r_dup=RATES["duplicate_send"], r_ms=RATES["event_time_ms"],
        r_late=RATES["late_event_time"], r_stale=RATES["stale_send"], r_future=RATES["future_time"],
        r_phe=RATES["ph_hash_of_empty"], r_fbph=RATES["fbp_hashed"], r_fbc=RATES["fbc_missing_on_landing"],
        r_ua=RATES["server_user_agent"], r_ip=RATES["private_ip"], r_cmiss=RATES["consent_missing"],
        r_cur=RATES["bad_currency"], r_comma=RATES["value_comma"], r_noval=RATES["purchase_missing_value"],
        r_drop=RATES["server_dropped"], r_em_raw=RATES["em_unhashed"], r_em_upper=RATES["em_uppercase_hash"],
        private=_lit(_PRIVATE_IP_PREFIXES), server_uas=_lit(_SERVER_UAS), bad_cur=_lit(_BAD_CURRENCIES),
    ))


# -- writing ---------------------------------------------------------------------------------------

_FILE_ORDER = {"_browser": "t, sid, slot", "_server": "sent_at, sid, slot, copy"}
"""Row order in the files (unique keys): a Pixel export is chronological, a CAPI log is in send order."""


def _cell(col: str) -> str:
    """Flat (CSV/Parquet) text of an internal column: one value as is, several as a JSON array."""
    if col in _LIST_KEYS:
        return f"CASE WHEN len({col}) = 1 THEN {col}[1] WHEN len({col}) > 1 THEN to_json({col})::VARCHAR END"
    if col in ("event_time_raw", "sent_at"):
        return f"{col}::VARCHAR"
    return col


def _flat_select(table: str, columns: tuple[tuple[str, str], ...]) -> str:
    cols = ", ".join(f"{_cell(src)} AS \"{header}\"" for header, src in columns)
    return f"SELECT {cols} FROM {table} ORDER BY {_FILE_ORDER[table]}"


def _json_entry(key: str, expr: str) -> str:
    return f"{{'k': '{key}', 'v': {expr}}}"


def _json_object(entries: list[str]) -> str:
    """A JSON object without its null members (a CAPI payload omits absent keys)."""
    return f"to_json(map_from_entries(list_filter([{', '.join(entries)}], lambda x: x.v IS NOT NULL)))"


def _number_or_text(col: str) -> str:
    return (f"CASE WHEN regexp_full_match({col}, '[0-9]+(\\.[0-9]+)?') THEN {col}::JSON "
            f"ELSE to_json({col}) END")


def _jsonl_select(table: str, role: str) -> str:
    return f"SELECT {_json_event(role)}::VARCHAR AS line FROM {table} ORDER BY {_FILE_ORDER[table]}"


def _json_event(role: str, *, envelope: bool = True) -> str:
    """One row as a CAPI event object (SQL); ``envelope=False`` leaves out what a request body does not
    carry per event (``sent_at``, ``test_event_code``, ``pixel_id``)."""
    user = []
    for key in _LIST_KEYS:
        if role == "server" or key in ("em", "external_id"):
            user.append(_json_entry(key, f"to_json({key})"))
    for key in _SCALAR_KEYS:
        if role == "server" or key != "client_ip_address":
            user.append(_json_entry(key, f"to_json({key})"))
    custom = [_json_entry("value", _number_or_text("value")), _json_entry("currency", "to_json(currency)"),
              _json_entry("content_ids", "content_ids::JSON"),
              _json_entry("content_type", "to_json(content_type)"),
              _json_entry("num_items", "num_items::JSON")]
    if role == "server":
        custom.append(_json_entry("order_id", "to_json(order_id)"))
    consent = [_json_entry("ad_storage", "to_json(consent_ad_storage)"),
               _json_entry("ad_user_data", "to_json(consent_ad_user_data)"),
               _json_entry("region", "to_json(consent_region)")]
    time_expr = ("event_time_raw::JSON" if role == "server" else "to_json(event_time_raw)")
    top = [_json_entry("event_name", "to_json(event_name)"), _json_entry("event_id", "to_json(event_id)"),
           _json_entry("event_time", time_expr)]
    if role == "server":
        top.append(_json_entry("action_source", "to_json(action_source)"))
    top += [_json_entry("event_source_url", "to_json(url)"),
            _json_entry("user_data", _json_object(user) + "::JSON"),
            _json_entry("custom_data", f"nullif({_json_object(custom)}::VARCHAR, '{{}}')::JSON"),
            _json_entry("consent", _json_object(consent) + "::JSON")]
    if role == "server" and envelope:
        top += [_json_entry("sent_at", "sent_at::JSON"),
                _json_entry("test_event_code", "to_json(test_event_code)")]
    if envelope:
        top.append(_json_entry("pixel_id", "to_json(pixel_id)"))
    return _json_object(top)


def _copy(db: Database, select: str, path: Path, fmt: str) -> None:
    target = str(path).replace("'", "''")
    if fmt == "csv":
        opts = "FORMAT csv, HEADER true"
    elif fmt == "parquet":
        opts = "FORMAT parquet, COMPRESSION zstd"
    else:
        # each row is one finished JSON text: write it verbatim, one per line
        opts = "FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x1f'"
    db.execute(f"COPY ({select}) TO '{target}' ({opts})")


# -- ground truth ----------------------------------------------------------------------------------

_NON_BROWSER = ("python-requests|curl/|node-fetch|axios/|Go-http-client|okhttp|Java/|PostmanRuntime|Wget|"
                "libwww-perl|Apache-HttpClient")
_PRIVATE_IP_RE = r"\A(10\.|127\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.)"


def _manifest_sql() -> dict[str, str]:
    """Queries measuring the generated rows with the diagnostics' definitions: the manifest's ground truth,
    which the report is checked against number by number."""
    loaded_b = "(SELECT * FROM _browser WHERE NOT unreadable)"
    return {
        "keys": f"""
CREATE OR REPLACE TEMP TABLE _keys AS
WITH br AS (SELECT * FROM {loaded_b} WHERE event_id IS NOT NULL),
     sr AS (SELECT * FROM _server WHERE event_id IS NOT NULL),
     bk AS (SELECT pixel_id, event_name, event_id, min(event_time) AS t0,
                   arg_min(fbp, (event_time, {_FILE_ORDER["_browser"]})) AS fbp FROM br GROUP BY ALL),
     sk AS (SELECT pixel_id, event_name, event_id, min(event_time) AS t0,
                   arg_min(fbp, (event_time, {_FILE_ORDER["_server"]})) AS fbp FROM sr GROUP BY ALL),
     win AS (SELECT DISTINCT br.pixel_id, br.event_name, br.event_id FROM br JOIN sr
             USING (pixel_id, event_name, event_id) WHERE abs(br.event_time - sr.event_time) <= 172800)
SELECT coalesce(bk.pixel_id, sk.pixel_id) AS pixel_id, coalesce(bk.event_name, sk.event_name) AS event_name,
       coalesce(bk.event_id, sk.event_id) AS event_id, bk.t0 AS b_t0, sk.t0 AS s_t0, bk.fbp AS b_fbp,
       sk.fbp AS s_fbp,
       CASE WHEN bk.event_id IS NOT NULL AND sk.event_id IS NOT NULL AND win.event_id IS NOT NULL
           THEN 'paired'
            WHEN bk.event_id IS NOT NULL AND sk.event_id IS NOT NULL THEN 'outside_window'
            WHEN bk.event_id IS NOT NULL THEN 'browser_only' ELSE 'server_only' END AS status
FROM bk FULL JOIN sk USING (pixel_id, event_name, event_id)
LEFT JOIN win USING (pixel_id, event_name, event_id)
""",
        "reasons": """
CREATE OR REPLACE TEMP TABLE _reasons AS
WITH so AS (SELECT * FROM _keys WHERE status = 'server_only'),
     bo AS (SELECT * FROM _keys WHERE status = 'browser_only'),
     case_m AS (SELECT DISTINCT so.pixel_id, so.event_name, so.event_id FROM so JOIN bo
                ON so.pixel_id = bo.pixel_id AND so.event_id = bo.event_id
                AND lower(so.event_name) = lower(bo.event_name) AND so.event_name <> bo.event_name),
     twice AS (SELECT DISTINCT so.pixel_id, so.event_name, so.event_id FROM so JOIN bo
               ON so.pixel_id = bo.pixel_id AND so.event_name = bo.event_name AND so.s_fbp = bo.b_fbp
               AND trim(so.s_fbp) <> '' AND abs(so.s_t0 - bo.b_t0) <= 60
               WHERE NOT EXISTS (SELECT 1 FROM case_m c WHERE c.pixel_id = so.pixel_id
                                 AND c.event_name = so.event_name AND c.event_id = so.event_id))
SELECT so.*, CASE WHEN c.event_id IS NOT NULL THEN 'name_case_mismatch'
                  WHEN w.event_id IS NOT NULL THEN 'different_ids_probable'
                  ELSE 'server_only_unexplained' END AS reason
FROM so LEFT JOIN case_m c USING (pixel_id, event_name, event_id)
        LEFT JOIN twice w USING (pixel_id, event_name, event_id)
""",
        "partners": """
SELECT count(*) FROM (
    SELECT bo.pixel_id, bo.event_name, bo.event_id FROM _keys bo JOIN _reasons r
    ON bo.pixel_id = r.pixel_id AND bo.event_id = r.event_id AND lower(bo.event_name) = lower(r.event_name)
    AND bo.event_name <> r.event_name
    WHERE bo.status = 'browser_only' AND r.reason = 'name_case_mismatch'
    UNION
    SELECT bo.pixel_id, bo.event_name, bo.event_id FROM _keys bo JOIN _reasons r
    ON bo.pixel_id = r.pixel_id AND bo.event_name = r.event_name AND bo.b_fbp = r.s_fbp
    WHERE bo.status = 'browser_only' AND r.reason = 'different_ids_probable' AND abs(bo.b_t0 - r.s_t0) <= 60)
""",
        "dedup": f"""
SELECT
  (SELECT count(*) FILTER (WHERE status = 'paired') FROM _keys),
  (SELECT count(*) FILTER (WHERE status = 'outside_window') FROM _keys),
  (SELECT count(*) FILTER (WHERE status = 'browser_only') FROM _keys),
  (SELECT count(*) FILTER (WHERE status = 'server_only') FROM _keys),
  (SELECT count(*) FILTER (WHERE reason = 'name_case_mismatch') FROM _reasons),
  (SELECT count(*) FILTER (WHERE reason = 'different_ids_probable') FROM _reasons),
  (SELECT count(*) FILTER (WHERE reason = 'server_only_unexplained') FROM _reasons),
  (SELECT count(*) FILTER (WHERE event_id IS NULL) FROM {loaded_b}),
  (SELECT count(*) FILTER (WHERE event_id IS NULL) FROM _server),
  (SELECT count(event_id) - count(DISTINCT (pixel_id, event_name, event_id)) FROM _server
   WHERE event_id IS NOT NULL),
  (SELECT count(event_id) - count(DISTINCT (pixel_id, event_name, event_id)) FROM {loaded_b}
   WHERE event_id IS NOT NULL),
  (SELECT count(*) FILTER (WHERE status = 'paired' AND abs(s_t0 - b_t0) > {SKEW_THRESHOLD_S}) FROM _keys)
""",
        "timing": """
SELECT count(*) FILTER (WHERE event_time_unit = 'ms'),
       count(*) FILTER (WHERE sent_at - event_time > 604800),
       count(*) FILTER (WHERE event_time - sent_at > 60),
       count(*) FILTER (WHERE sent_at IS NULL)
FROM _server
""",
        "match_keys": f"""
SELECT
  count(*) FILTER (WHERE len(list_filter(em, lambda v: NOT regexp_full_match(v, '{HASH}'))) > 0),
  count(*) FILTER (WHERE len(list_filter(em, lambda v: regexp_full_match(v, '{HASH}')
                                          AND regexp_matches(v, '[A-F]'))) > 0),
  count(*) FILTER (WHERE list_contains(em, '{HASH_EMPTY}')),
  count(*) FILTER (WHERE list_contains(ph, '{HASH_EMPTY}')),
  count(*) FILTER (WHERE regexp_full_match(fbp, '{HASH}')),
  count(*) FILTER (WHERE regexp_matches(url, '[?&]fbclid=') AND fbc IS NULL),
  count(*) FILTER (WHERE regexp_matches(client_ip_address,
        '{_PRIVATE_IP_RE}')),
  count(*) FILTER (WHERE regexp_matches(client_user_agent, '{_NON_BROWSER}')),
  count(*) FILTER (WHERE len(em) > 1),
  count(*) FILTER (WHERE em IS NOT NULL),
  count(*) FILTER (WHERE fbp IS NOT NULL),
  count(*) FILTER (WHERE fbc IS NOT NULL),
  count(*) FILTER (WHERE contains(client_ip_address, ':'))
FROM _server
""",
        "consent": """
SELECT count(*) FILTER (WHERE consent_ad_storage = 'denied' OR consent_ad_user_data = 'denied'),
       count(*) FILTER (WHERE NOT coalesce(consent_ad_storage = 'denied'
           OR consent_ad_user_data = 'denied', FALSE)
                         AND (consent_ad_storage IS NULL OR consent_ad_user_data IS NULL))
FROM _server
""",
        "contract": """
SELECT count(*) FILTER (WHERE event_name = 'Purchase' AND value IS NULL),
       count(*) FILTER (WHERE event_name = 'Purchase' AND currency IS NULL),
       count(*) FILTER (WHERE value IS NOT NULL AND NOT regexp_full_match(value,
           '\\s*[+-]?[0-9]+(\\.[0-9]+)?\\s*')),
       count(*) FILTER (WHERE currency IS NOT NULL AND NOT list_contains(?, upper(currency))),
       count(*) FILTER (WHERE NOT list_contains(?, event_name)
                         AND list_contains(?, lower(replace(event_name, '_', '')))),
       count(*) FILTER (WHERE test_event_code IS NOT NULL),
       count(*) FILTER (WHERE action_source IS NULL),
       count(*) FILTER (WHERE action_source = 'website' AND url IS NULL)
FROM _server
""",
    }


_SRV = "SELECT count(*) FROM _server"
_SESS = "SELECT count(*) FROM _sess"
_MIX_OBSERVED: dict[str, tuple[str, str]] = {
    # name: (count, out of) measured over the generated tables
    "pixel_blocked": (f"{_SESS} WHERE pixel_blocked", _SESS),
    "consent_denied_banner": (f"{_SESS} WHERE banner AND consent_state = 'denied'", f"{_SESS} WHERE banner"),
    "consent_partial_banner": (f"{_SESS} WHERE banner AND consent_state = 'partial'",
                               f"{_SESS} WHERE banner"),
    "consent_denied_optout": (f"{_SESS} WHERE NOT banner AND consent_state = 'denied'",
                              f"{_SESS} WHERE NOT banner"),
    "consent_ignored": ("SELECT count(DISTINCT sid) FROM _server JOIN _sess USING (sid) "
                        "WHERE consent_state = 'denied'", f"{_SESS} WHERE consent_state = 'denied'"),
    "consent_missing": (f"{_SRV} WHERE consent_ad_storage IS NULL AND consent_ad_user_data IS NULL", _SRV),
    "server_dropped": ("SELECT count(*) FROM _ev JOIN _sess USING (sid) WHERE (consent_state <> 'denied' "
                       "OR consent_ignored) AND k NOT IN (SELECT k FROM _server)",
                       "SELECT count(*) FROM _ev JOIN _sess USING (sid) "
                       "WHERE consent_state <> 'denied' OR consent_ignored"),
    "browser_missing_event_id": ("SELECT count(*) FROM _browser WHERE event_id IS NULL",
                                 "SELECT count(*) FROM _browser"),
    "server_missing_event_id": (f"{_SRV} WHERE event_id IS NULL", _SRV),
    "id_generated_twice": ("SELECT count(*) FROM _server s JOIN _ev e USING (k) "
                           "WHERE e.event_name = 'AddToCart' AND s.event_id <> e.shared_id",
                           f"{_SRV} WHERE event_name = 'AddToCart' AND event_id IS NOT NULL"),
    "purchase_lowercase": (f"{_SRV} WHERE event_name = 'purchase'",
                           f"{_SRV} WHERE lower(event_name) = 'purchase'"),
    "duplicate_send": (f"{_SRV} WHERE copy = 1", f"{_SRV} WHERE copy = 0"),
    "event_time_ms": (f"{_SRV} WHERE event_time_unit = 'ms'", _SRV),
    "late_event_time": (f"{_SRV} WHERE event_time - t > 300 AND event_time - t < 3600", _SRV),
    "stale_send": (f"{_SRV} WHERE sent_at - event_time > 604800", _SRV),
    "future_time": (f"{_SRV} WHERE event_time - t = 3600", _SRV),
    "em_unhashed": (f"{_SRV} WHERE NOT regexp_full_match(em[1], '{HASH}')",
                    f"{_SRV} WHERE em IS NOT NULL"),
    "em_uppercase_hash": (f"{_SRV} WHERE regexp_full_match(em[1], '[0-9A-F]{{64}}') "
                          "AND regexp_matches(em[1], '[A-F]')",
                          f"{_SRV} WHERE em IS NOT NULL"),
    "em_multi_valued": ("SELECT count(DISTINCT sid) FROM _server WHERE len(em) > 1",
                        "SELECT count(DISTINCT sid) FROM _server WHERE em IS NOT NULL"),
    "ph_hash_of_empty": (f"{_SRV} WHERE no_phone_identity AND ph = ['{HASH_EMPTY}']",
                         f"{_SRV} WHERE no_phone_identity"),
    "fbp_hashed": (f"{_SRV} WHERE regexp_full_match(fbp, '{HASH}')", f"{_SRV} WHERE fbp IS NOT NULL"),
    "fbc_missing_on_landing": (f"{_SRV} WHERE slot = 0 AND contains(url, 'fbclid=') AND fbc IS NULL",
                               f"{_SRV} WHERE slot = 0 AND contains(url, 'fbclid=')"),
    "server_user_agent": (f"{_SRV} WHERE regexp_matches(client_user_agent, '{_NON_BROWSER}')", _SRV),
    "private_ip": (f"{_SRV} WHERE regexp_matches(client_ip_address, '{_PRIVATE_IP_RE}')", _SRV),
    "bad_currency": (f"{_SRV} WHERE list_contains({_lit(_BAD_CURRENCIES)}, currency)",
                     f"{_SRV} WHERE currency IS NOT NULL"),
    "value_comma": (f"{_SRV} WHERE contains(value, ',')", f"{_SRV} WHERE value IS NOT NULL"),
    "purchase_missing_value": (f"{_SRV} WHERE lower(event_name) = 'purchase' AND value IS NULL",
                               f"{_SRV} WHERE lower(event_name) = 'purchase'"),
    "browser_unreadable_time": ("SELECT count(*) FROM _browser WHERE unreadable",
                                "SELECT count(*) FROM _browser"),
}
"""For each :data:`MIX` entry, how often it actually happened in the generated rows, and out of what."""


def observed_mix(db: Database) -> dict[str, dict[str, Any]]:
    """``{name: {"count", "of", "rate"}}`` for every :data:`MIX` entry, measured after generation."""
    out: dict[str, dict[str, Any]] = {}
    for r in MIX:
        num_sql, den_sql = _MIX_OBSERVED[r.name]
        num = int(db.execute(num_sql).fetchone()[0])
        den = int(db.execute(den_sql).fetchone()[0])
        out[r.name] = {"count": num, "of": den, "rate": _ratio(num, den)}
    return out


def _counts(db: Database, table: str, where: str = "TRUE") -> dict[str, int]:
    sql = f"SELECT event_name, count(*) FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1"
    rows = db.execute(sql).fetchall()
    return {name: int(n) for name, n in rows}


def build_manifest(db: Database, *, sessions: int, seed: int, end: int, fmt: str,
                   files: dict[str, str]) -> dict[str, Any]:
    """Ground truth measured over the generated tables (``_sess``, ``_browser``, ``_server``)."""
    import pycountry

    from capi_diag.core.schema import STANDARD_EVENTS

    q = _manifest_sql()
    db.execute(q["keys"])
    db.execute(q["reasons"])
    partners = int(db.execute(q["partners"]).fetchone()[0])
    d = [int(x) for x in db.execute(q["dedup"]).fetchone()]
    browser_only, server_only = d[2], d[3]
    paired, outside = d[0], d[1]
    reused_rows = sum(int(db.execute(f"""
        SELECT count(*) FROM (
            SELECT event_id FROM (
                SELECT event_id, event_name, max(event_time) - min(event_time) AS spread FROM {table}
                WHERE event_id IS NOT NULL GROUP BY event_id, event_name)
            GROUP BY event_id HAVING count(*) > 1 OR max(spread) > 172800)
    """).fetchone()[0]) for table in ("(SELECT * FROM _browser WHERE NOT unreadable)", "_server"))
    tm = [int(x) for x in db.execute(q["timing"]).fetchone()]
    mk = [int(x) for x in db.execute(q["match_keys"]).fetchone()]
    cs = [int(x) for x in db.execute(q["consent"]).fetchone()]
    currencies = sorted(c.alpha_3 for c in pycountry.currencies)
    standard = list(STANDARD_EVENTS)
    folded = [s.lower() for s in standard]
    ct = [int(x) for x in db.execute(q["contract"], [currencies, standard, folded]).fetchone()]
    rows_b = db.execute("SELECT count(*), count(*) FILTER (WHERE unreadable) FROM _browser").fetchone()
    rows_s = db.execute("SELECT count(*) FROM _server").fetchone()[0]
    sess = db.execute("""
        SELECT count(*), count(*) FILTER (WHERE depth >= 2), count(*) FILTER (WHERE depth >= 3),
               count(*) FILTER (WHERE depth >= 4), count(*) FILTER (WHERE depth >= 5),
               count(*) FILTER (WHERE pixel_blocked), count(*) FILTER (WHERE ad_click),
               count(*) FILTER (WHERE logged_in), count(*) FILTER (WHERE mobile),
               count(*) FILTER (WHERE consent_state = 'denied'),
                   count(*) FILTER (WHERE consent_state = 'partial'),
               count(*) FILTER (WHERE consent_state = 'denied' AND consent_ignored),
               min(start), max(start)
        FROM _sess""").fetchone()
    regions = dict(db.execute("SELECT country, count(*) FROM _sess GROUP BY 1 ORDER BY 1").fetchall())
    times = db.execute("SELECT min(t), max(t) FROM _ev").fetchone()
    return {
        "generator": {
            "command": f"python -m capi_diag sample --out DIR --sessions {sessions} --seed {seed} "
                       f"--format {fmt}",
            "sessions": sessions, "seed": seed, "format": fmt,
            "window_start": _iso(end - WINDOW_S), "window_end": _iso(end),
            "first_event_time": _iso(times[0]) if times[0] is not None else None,
            "last_event_time": _iso(times[1]) if times[1] is not None else None,
            "pixel_id": PIXEL_ID, "test_event_code": TEST_CODE,
            "mix": {r.name: {"rate": r.rate, "per": r.per} for r in MIX},
        },
        "mix_observed": observed_mix(db),
        "files": files,
        "rows": {
            "browser": {"written": int(rows_b[0]), "loadable": int(rows_b[0] - rows_b[1])},
            "server": {"written": int(rows_s), "loadable": int(rows_s)},
        },
        "expected_rejected": {
            "browser": {"event_time_empty": int(rows_b[1])} if rows_b[1] else {},
            "server": {},
        },
        "sessions": {
            "total": int(sess[0]),
            "funnel": dict(zip(FUNNEL_STEPS, (int(sess[0]), *map(int, sess[1:5])), strict=True)),
            "pixel_blocked": int(sess[5]), "ad_click": int(sess[6]), "logged_in": int(sess[7]),
            "mobile": int(sess[8]), "consent_denied": int(sess[9]), "consent_partial": int(sess[10]),
            "consent_denied_forwarded": int(sess[11]),
            "by_region": {k: int(v) for k, v in regions.items()},
        },
        "journey": {
            "browser": _counts(db, "_browser", "NOT unreadable"),
            "server": _counts(db, "_server"),
        },
        "dedup": {
            "paired": paired, "outside_window": outside, "browser_only": browser_only,
            "server_only": server_only,
            "pairing_rate": _ratio(paired, paired + outside + browser_only + server_only),
            "browser_coverage": _ratio(paired, paired + outside + browser_only),
            "server_coverage": _ratio(paired, paired + outside + server_only),
            "name_case_mismatch": d[4], "different_ids_probable": d[5], "server_only_unexplained": d[6],
            "browser_only_unexplained": browser_only - partners,
            "browser_missing_event_id": d[7], "server_missing_event_id": d[8],
            "duplicate_server_rows": d[9], "duplicate_browser_rows": d[10],
            "reused_event_id": int(reused_rows),
        },
        "timing": {
            "skew_over_threshold": d[11], "skew_threshold_s": SKEW_THRESHOLD_S,
            "event_time_in_ms": tm[0], "stale_over_7d": tm[1], "future": tm[2], "sent_at_missing": tm[3],
        },
        "match_keys": {
            "em": {"present": mk[9], "unhashed": mk[0], "uppercase_hash": mk[1], "hashed_empty": mk[2],
                   "multi_valued": mk[8]},
            "ph": {"hashed_empty": mk[3]},
            "fbp": {"present": mk[10], "hashed": mk[4]},
            "fbc": {"present": mk[11], "missing_with_fbclid": mk[5]},
            "client_ip_address": {"private": mk[6], "ipv6": mk[12]},
            "client_user_agent": {"non_browser": mk[7]},
        },
        "consent": {"forwarded_without_consent": cs[0], "consent_unknown": cs[1],
                    "policy": "ad_storage and ad_user_data required everywhere (the default)"},
        "contract": {
            "purchase_missing_value": ct[0], "purchase_missing_currency": ct[1], "value_not_numeric": ct[2],
            "currency_invalid": ct[3], "nonstandard_event_name": ct[4], "test_event_code_present": ct[5],
            "action_source_invalid": ct[6], "event_source_url_missing": ct[7],
        },
    }


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


# -- entry point -----------------------------------------------------------------------------------

def write_sample(out: str | Path, *, sessions: int = DEFAULT_SESSIONS, seed: int = DEFAULT_SEED,
                 fmt: str = "csv", end: int = REFERENCE_END, threads: int | None = None) -> list[Path]:
    """Write ``browser_events.<ext>``, ``server_events.<ext>``, ``manifest.json``, the shop's orders
    export ``orders.csv`` and the sender's ``send_log.jsonl`` into ``out``.

    ``end`` is the end of the three-day browsing window (Unix seconds; a fixed date by default so
    that the files are reproducible). The same arguments always give byte-identical files.
    Returns the paths written: the logs, the manifest, the orders export, the send log.
    """
    if fmt not in FORMATS:
        raise UsageError(f"sample: unknown --format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if sessions < 1:
        raise UsageError(f"sample: --sessions must be at least 1 (got {sessions}).")
    if not 0 <= seed < 2 ** 63:
        raise UsageError(f"sample: --seed must be a non-negative integer below 2^63 (got {seed}).")
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"sample: cannot create the output folder {out_dir} ({e.strerror}); "
                         "choose a writable --out.") from None
    ext = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}[fmt]
    paths = {"browser": out_dir / f"browser_events.{ext}", "server": out_dir / f"server_events.{ext}"}
    with Database(threads=threads) as db:
        _generate(db, sessions=sessions, seed=seed, end=end)
        for role, table, columns in (("browser", "_browser", BROWSER_COLUMNS),
                                     ("server", "_server", SERVER_COLUMNS)):
            select = _jsonl_select(table, role) if fmt == "jsonl" else _flat_select(table, columns)
            _copy(db, select, paths[role], fmt)
        manifest = build_manifest(db, sessions=sessions, seed=seed, end=end, fmt=fmt,
                                  files={k: p.name for k, p in paths.items()})
        extras = {"orders": out_dir / ORDERS_FILE, "send_log": out_dir / SEND_LOG_FILE}
        _generate_orders(db, seed=seed, end=end)
        _copy(db, _ORDERS_EXPORT_SQL, extras["orders"], "csv")
        _copy(db, _send_log_select(seed), extras["send_log"], "jsonl")
        manifest["orders"] = orders_manifest(db)
    manifest_path = out_dir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [paths["browser"], paths["server"], manifest_path, extras["orders"], extras["send_log"]]


# -- the orders export and the send log (reconciliation demo) ---------------------------------------

ORDER_MIX: tuple[Rate, ...] = (
    Rate("order_discount", 0.08, "web orders",
         "A coupon applied at payment lowers the order total by 5.00 after the Purchase event fired."),
    Rate("phone_order", 0.25, "sessions that started checkout but did not buy online",
         "The customer finished the order by phone: the shop has the order, neither log has a Purchase."),
    Rate("order_refunded", 0.03, "orders", "Refunded later; still an order in the export."),
    Rate("send_throttled", 0.06, "send-log requests",
         "A sale burst hit Meta's rate limit (code 17) and the sender gave up instead of retrying."),
)
"""The orders export's own mix (the logs' figures are those of :data:`MIX`, unchanged)."""
ORDER_RATES: dict[str, float] = {r.name: r.rate for r in ORDER_MIX}
SEND_BATCH_S = 600
"""The demo sender posts its Purchase events in 10-minute batches (one request per batch)."""
TOKEN_EXPIRED = (-40 * 3600, -30 * 3600)
"""Relative to ``end``: requests sent in this window were refused with 190/463 (an expired token
was replaced ten hours later)."""
ORDERS_FILE, SEND_LOG_FILE = "orders.csv", "send_log.jsonl"

_ORDERS_SQL = """
CREATE OR REPLACE TEMP TABLE _orders AS
WITH web AS (
    SELECT e.sid, s.order_id, e.t AS created, e.value_cents AS value_cents, s.currency, s.num_items,
           'web' AS channel
    FROM _ev e JOIN _sess s USING (sid) WHERE e.event_name = 'Purchase'
), phone AS (
    SELECT e.sid, s.order_id, e.t + 3600 + rint(e.sid, 'o_phone_t', 7200) AS created,
           e.value_cents + CASE WHEN e.value_cents < 5000 THEN 490 ELSE 0 END AS value_cents, s.currency,
           s.num_items, 'phone' AS channel
    FROM _ev e JOIN _sess s USING (sid)
    WHERE e.event_name = 'InitiateCheckout' AND s.depth = 4 AND rnd(e.sid, 'o_phone') < {r_phone}
), u AS (SELECT * FROM web UNION ALL SELECT * FROM phone)
SELECT u.*,
    channel = 'web' AND rnd(sid, 'o_disc') < {r_disc} AS discounted,
    CASE WHEN channel = 'web' AND rnd(sid, 'o_disc') < {r_disc} THEN greatest(value_cents - 500, 100)
         ELSE value_cents END AS total_cents,
    rnd(sid, 'o_refund') < {r_refund} AS refunded
FROM u
"""

_ORDERS_EXPORT_SQL = """
SELECT '#' || o.order_id AS "Name",
    CASE WHEN li = 0 THEN s.email END AS "Email",
    CASE WHEN li = 0 THEN CASE WHEN o.refunded THEN 'refunded' ELSE 'paid' END END AS "Financial Status",
    strftime(make_timestamp(o.created * 1000000), '%Y-%m-%d %H:%M:%S') || ' +0000' AS "Created at",
    CASE WHEN li = 0 THEN o.currency END AS "Currency",
    CASE WHEN li = 0 THEN money(o.total_cents) END AS "Total",
    1 AS "Lineitem quantity",
    'Item ' || (li + 1)::VARCHAR AS "Lineitem name",
    CASE WHEN li = 0 THEN s.fn_a || ' ' || s.ln_a END AS "Billing Name",
    CASE WHEN li = 0 THEN s.phone END AS "Phone",
    CASE WHEN li = 0 THEN (1 + rint(o.sid, 'o_street', 200))::VARCHAR || ' Main Street' END AS "Shipping Street"
FROM _orders o JOIN _sess s USING (sid), range(o.num_items) r(li)
ORDER BY o.created, o.order_id, li
"""

_SENDS_SQL = """
CREATE OR REPLACE TEMP TABLE _sends AS
SELECT *, sent_at // {batch_s} AS batch,
    row_number() OVER (ORDER BY sent_at, sid, slot, copy) AS pos_all
FROM _server WHERE event_name IN ('Purchase', 'purchase');
CREATE OR REPLACE TEMP TABLE _requests AS
WITH r AS (
    SELECT batch, min(sent_at) AS sent_at, count(*) AS n,
        batch * {batch_s} >= {tok0} AND batch * {batch_s} < {tok1} AS token_expired,
        bool_or(sent_at - event_time > 604800) AS stale,
        bool_or(array_to_string(em, ',') LIKE '%@%') AS unhashed,
        count(*) FILTER (WHERE currency IN {bad_cur}) AS bad_cur,
        bool_or(value LIKE '%,%') AS comma,
        rnd(batch, 'q_throttle') < {r_throttle} AS throttled
    FROM _sends GROUP BY batch
)
SELECT r.*,
    CASE WHEN token_expired OR stale OR unhashed OR throttled THEN 400 ELSE 200 END AS http_status,
    CASE WHEN token_expired THEN 'token' WHEN stale THEN 'stale' WHEN unhashed THEN 'unhashed'
         WHEN throttled THEN 'throttle' END AS refusal,
    'A' || substr(sha256('{seed}:fbtrace:' || batch::VARCHAR), 1, 22) AS fbtrace_id
FROM r
"""

_ERROR_BODIES = {
    "token": {"message": "Error validating access token: Session has expired on Wednesday, 18-Nov-26 00:00:00 "
                         "PST. The current time is Wednesday, 18-Nov-26 01:12:09 PST.",
              "type": "OAuthException", "code": 190, "error_subcode": 463},
    "stale": {"message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 2804003,
              "is_transient": False, "error_user_title": "Event Timestamp Too Old",
              "error_user_msg": "The timestamp for this event is too far in the past. Events need to be sent from "
                                "your server within 7 days of when they occurred. Enter a timestamp that has "
                                "occurred within the last 7 days."},
    "unhashed": {"message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 2804016,
                 "is_transient": False, "error_user_title": "User Parameter Not Hashed",
                 "error_user_msg": "The em parameter isn\u2019t hashed. Hash all user parameters as SHA256, except "
                                   "for client user agent, click ID, and browser ID. Any other user parameters that "
                                   "are not hashed are automatically rejected by Facebook."},
    "throttle": {"message": "User request limit reached", "type": "OAuthException", "code": 17},
}
"""Meta's own error bodies (docs/meta-examples.md §C2, §C3, §C7 and the throttling body of §C9), the
``fbtrace_id`` added per request."""
COMMA_MESSAGE = ("The value parameter of a Purchase event is not a number (use a dot as decimal separator); "
                 "the event was received without a value.")
"""The warning the demo's accepted requests carry when one of their events has a comma in its value
(an illustration of ``messages`` in a 200 answer)."""


def _send_log_select(seed: int) -> str:
    """One JSON line per request: the request body, the HTTP status and Meta's answer."""
    cases = " ".join(
        f"WHEN '{k}' THEN json_merge_patch({_lit(json.dumps({'error': v}))}::JSON, "
        "json_object('error', json_object('fbtrace_id', q.fbtrace_id)))"
        for k, v in _ERROR_BODIES.items())
    ok = (f"json_object('events_received', q.n - q.bad_cur, 'messages', CASE WHEN q.comma "
          f"THEN json_array({_lit(COMMA_MESSAGE)}) ELSE json_array() END, 'fbtrace_id', q.fbtrace_id)")
    return f"""
SELECT json_object('sent_at', q.sent_at, 'pixel_id', '{PIXEL_ID}',
        'request', json_object('data', to_json(d.events)),
        'http_status', q.http_status,
        'response', CASE q.refusal {cases} ELSE {ok} END)::VARCHAR AS line
FROM _requests q JOIN (
    SELECT batch, list({_json_event('server', envelope=False)}::JSON ORDER BY pos_all) AS events
    FROM _sends GROUP BY batch) d USING (batch)
ORDER BY q.sent_at, q.batch
"""


def _generate_orders(db: Database, *, seed: int, end: int) -> None:
    db.execute(_render(_ORDERS_SQL, r_phone=ORDER_RATES["phone_order"], r_disc=ORDER_RATES["order_discount"],
                       r_refund=ORDER_RATES["order_refunded"]))
    for stmt in _render(_SENDS_SQL, batch_s=SEND_BATCH_S, tok0=end + TOKEN_EXPIRED[0], tok1=end + TOKEN_EXPIRED[1],
                        bad_cur="(" + ", ".join(_lit(c) for c in _BAD_CURRENCIES) + ")",
                        seed=int(seed), r_throttle=ORDER_RATES["send_throttled"]).split(";"):
        if stmt.strip():
            db.execute(stmt)


_RECON_TRUTH_SQL = """
CREATE OR REPLACE TEMP TABLE _truth AS
WITH b AS (
    SELECT event_id AS k, count(*) AS n FROM _browser
    WHERE NOT unreadable AND event_name = 'Purchase' AND event_id IS NOT NULL GROUP BY 1
), srows AS (
    SELECT s.*, EXISTS (SELECT 1 FROM _browser b WHERE NOT b.unreadable AND b.event_name = 'Purchase'
                        AND b.event_id = s.event_id AND abs(b.event_time - s.event_time) <= 172800) AS paired,
        (external_id IS NOT NULL OR fbc IS NOT NULL
         OR regexp_full_match(coalesce(em[1], ''), '[0-9a-f]{64}')) AS strong,
        row_number() OVER (PARTITION BY order_id ORDER BY event_time, sent_at, sid, slot, copy) AS rn
    FROM _server s WHERE event_name = 'Purchase' AND order_id IS NOT NULL
), s AS (
    SELECT order_id AS k, count(*) AS n, bool_or(paired) AS paired, bool_or(strong) AS strong,
        max(value) FILTER (WHERE rn = 1) AS value, max(currency) FILTER (WHERE rn = 1) AS currency
    FROM srows GROUP BY 1
), a AS (
    SELECT x.order_id AS k, count(*) AS n, count(*) FILTER (WHERE q.http_status = 200) AS accepted
    FROM _sends x JOIN _requests q USING (batch) WHERE x.event_name = 'Purchase' GROUP BY 1
)
SELECT o.order_id, o.currency, o.total_cents, o.created,
    coalesce(b.n, 0) AS b_n, coalesce(s.n, 0) AS s_n, coalesce(a.n, 0) AS sends, coalesce(a.accepted, 0) AS acc,
    CASE WHEN b.n IS NULL AND a.n IS NULL THEN 'not_sent'
         WHEN b.n IS NULL AND coalesce(a.accepted, 0) = 0 THEN 'refused'
         WHEN b.n IS NOT NULL AND a.accepted > 0 AND NOT coalesce(s.paired, false) THEN 'counted_twice'
         WHEN b.n IS NULL AND a.accepted > 0 AND NOT coalesce(s.strong, false) THEN 'unlikely_match'
         ELSE 'counted_once' END AS stage,
    s.n IS NOT NULL AND (TRY_CAST(s.value AS DECIMAL(38, 6)) IS NULL
        OR abs(TRY_CAST(s.value AS DECIMAL(38, 6)) - o.total_cents / 100) > 0.01) AS value_mismatch,
    s.n IS NOT NULL AND (s.currency IS NULL OR upper(trim(s.currency)) <> o.currency) AS currency_mismatch
FROM _orders o LEFT JOIN b ON b.k = o.order_id LEFT JOIN s ON s.k = o.order_id LEFT JOIN a ON a.k = o.order_id
"""


def orders_manifest(db: Database) -> dict[str, Any]:
    """Ground truth of the orders export and the send log, measured over the generated tables with the
    definitions of the reconciliation and delivery sections."""
    from capi_diag.meta.errors import lookup

    db.execute(_RECON_TRUTH_SQL)
    c = db.execute("""SELECT count(*), count(*) FILTER (WHERE b_n > 0), count(*) FILTER (WHERE s_n > 0),
        count(*) FILTER (WHERE b_n > 0 AND s_n > 0), count(*) FILTER (WHERE b_n = 0 AND s_n = 0),
        count(*) FILTER (WHERE acc > 0), count(*) FILTER (WHERE sends > 0 AND acc = 0),
        count(*) FILTER (WHERE value_mismatch), count(*) FILTER (WHERE currency_mismatch) FROM _truth""").fetchone()
    waterfall = []
    for stage in ("not_sent", "refused", "counted_twice", "unlikely_match", "counted_once"):
        rows = db.execute("SELECT currency, count(*), sum(total_cents) FROM _truth WHERE stage = ? GROUP BY 1 "
                          "ORDER BY 1", [stage]).fetchall()
        waterfall.append({"stage": stage, "orders": sum(int(r[1]) for r in rows),
                          "revenue": {r[0]: int(r[2]) / 100 for r in rows}})
    orphans_b = db.execute("""SELECT count(*) FROM _browser WHERE NOT unreadable AND event_name = 'Purchase'
        AND (event_id IS NULL OR event_id NOT IN (SELECT order_id FROM _orders))""").fetchone()[0]
    orphans_s = db.execute("""SELECT count(*) FROM _server WHERE event_name = 'Purchase'
        AND (order_id IS NULL OR order_id NOT IN (SELECT order_id FROM _orders))""").fetchone()[0]
    o = db.execute("""SELECT count(*), count(*) FILTER (WHERE channel = 'phone'), count(*) FILTER (WHERE discounted),
        count(*) FILTER (WHERE refunded), sum(num_items) FROM _orders""").fetchone()
    d = db.execute("""SELECT count(*), sum(n), sum(n) FILTER (WHERE http_status = 200),
        sum(n) FILTER (WHERE http_status <> 200), count(*) FILTER (WHERE http_status = 200 AND bad_cur > 0),
        coalesce(sum(bad_cur) FILTER (WHERE http_status = 200), 0), count(*) FILTER (WHERE http_status = 200 AND comma)
        FROM _requests""").fetchone()
    by_code = []
    for refusal, rows, requests in db.execute("""SELECT refusal, sum(n), count(*) FROM _requests
            WHERE refusal IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1""").fetchall():
        body = _ERROR_BODIES[refusal]
        by_code.append({"code": body["code"], "subcode": body.get("error_subcode"), "rows": int(rows),
                        "requests": int(requests),
                        "title": lookup(body["code"], body.get("error_subcode"), 400).title})
    return {
        "files": {"orders": ORDERS_FILE, "send_log": SEND_LOG_FILE},
        "mix": {r.name: {"rate": r.rate, "per": r.per} for r in ORDER_MIX},
        "orders_export": {"orders": int(o[0]), "rows": int(o[4] or 0), "phone_orders": int(o[1]),
                          "discounted": int(o[2]), "refunded": int(o[3]),
                          "dropped_columns": ["Email", "Lineitem quantity", "Lineitem name", "Billing Name", "Phone",
                                              "Shipping Street"]},
        "reconciliation": {
            "orders": int(c[0]), "browser_purchase": int(c[1]), "server_purchase": int(c[2]), "both": int(c[3]),
            "neither": int(c[4]), "server_accepted": int(c[5]), "server_rejected": int(c[6]),
            "value_mismatch": int(c[7]), "currency_mismatch": int(c[8]),
            "purchases_without_order": {"browser": int(orphans_b), "server": int(orphans_s)},
            "waterfall": waterfall,
        },
        "delivery": {
            "requests": int(d[0]), "rows_sent": int(d[1] or 0), "accepted": int(d[2] or 0),
            "rejected": int(d[3] or 0),
            "rejected_by_code": by_code,
            "short_requests": {"requests": int(d[4]), "events_missing": int(d[5])},
            "warnings": {"requests": int(d[6])},
        },
    }
