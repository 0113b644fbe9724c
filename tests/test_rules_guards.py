"""The shortcuts of the in-place validity rules equal the plain rules they stand for.

``row_validity`` judges a single value with :func:`rules.single_value_mask` (one guarded ``CASE`` per
field: a pattern is tested only on the values that can still match it), the IP kind with
:func:`rules.ip_kind_fast` and the URL's fbclid presence with :func:`rules.fbclid_in_url`. Each is
checked here, in the engine, against the unguarded definition (:func:`rules.primitives` folded by
:func:`rules.value_mask`, :func:`rules.ip_kind`, :func:`rules.url_fbclid`) over tricky values and
over generated ones.
"""

from __future__ import annotations

import functools
import hashlib
from types import SimpleNamespace

import ibis
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capi_diag.engine import rules
from capi_diag.engine.dataset import Dataset


def h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


EM = h("john@example.com")
URL_ID = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
TRICKY: list[str | None] = [
    None, "", " ", "\t", "\u00a0", "\n \u2003",
    EM, EM.upper(), EM[:10].upper() + EM[10:], EM + ".AQ", EM + ".Ag", EM + ".XY", EM + ".AQQCAQIB",
    EM.upper() + ".AQQCAQIB", EM + ".undici12", EM + ".AQQCAQI", EM + "a", EM[:-1],
    " " + EM, EM + " ", EM + "\n", "\u00a0" + EM + "\u00a0", " " + EM.upper(), "\t" + EM + ".AQ ",
    h(""), h("").upper(), h("null"), h("undefined") + ".BA", h("NaN").upper(), " " + h(""),
    h("f"), h("m"), h("us"), h("19900101"), h("F"), h("us").upper(),
    "null", "NULL", " undefined ", "[object Object]", "{{Email}}", "${email}", "%%email%%", "-", "(not set)",
    "n/a", "N/A", "none", "nan", "unknown", "nullx", "fb.null",
    "fb.1.1596403881668.1116446470", "fb.1.1596403881668.1116446470.AQ", "fb.1.1596403881668.1116446470.AQQCAQIB",
    f"fb.1.1554763741205.{URL_ID}", f"fb.1.1554763741205.{URL_ID.lower()}", f"fb.1.1554763741205.{URL_ID}.Bg",
    f"fb.1.1554763741205.{URL_ID}%3D", "fb.1.159640388166.1116446470", "FB.1.1596403881668.1116446470",
    " fb.1.1596403881668.1116446470", "fb.", "fb.1.1596403881668.",
    "203.0.113.7", "10.0.0.1", "172.16.5.4", "100.64.1.1", "127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
    "203.0.113.7.AQ", "203.0.113.7.AQQAAQIB", "10.0.0.1.Bg", "010.0.0.1", "1.2.3", "1.2.3.4.5", "203.0.113.7:443",
    "2001:db8::1", "2001:DB8::1", "2600:1700:6e25:68e9:fdc2:2497:99f3:3455", "::1", "::", "fe80::1", "FE80::1",
    "fd00::1", "ff02::2", "fc00::", "::ffff:10.0.0.1", "::ffff:203.0.113.7", "::10.0.0.1", "::FFFF:C0A8:101",
    "::ffff:c0a8:101", "::ffff:cb00:7107", "0:0:0:0:0:ffff:a00:1", "0::ffff:10.0.0.1", "2001:db8::1.AQ",
    "::ffff:10.0.0.1.AQQAAQIB", "fe80::1%eth0", "[2001:db8::1]", "2001:db8:::1", "1.2.3.4, 5.6.7.8",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "python-requests/2.31.0", "Python-Requests/2.31", "curl/8.4.0", "Mozilla/5.0 okhttp/4.9", "Go-http-client/2.0",
    "PostmanRuntime/7.36", "axios/1.6.0", "scrapy", "Java/17.0.1",
]
URLS: list[str | None] = [
    None, "", "https://shop.example/p", f"https://shop.example/p?fbclid={URL_ID}",
    f"https://shop.example/p?a=1&fbclid={URL_ID.lower()}#x", f"https://shop.example/p?a=1&fbclid={URL_ID.upper()}",
    "https://shop.example/p?fbclid=", "https://shop.example/p?fbclid=&x=1", "https://shop.example/p#?fbclid=abc",
    "https://shop.example/p?x=fbclid=abc", "https://shop.example/p?xfbclid=abc", "fbclid=abc",
    f"https://shop.example/p?fbclid=other&fbclid={URL_ID}", f"https://shop.example/p?fbclid={URL_ID}&fbclid=",
]
FIELDS = list(rules.DEFECTS)


@pytest.fixture(scope="module")
def db():
    return Dataset.from_records(server=[{"event_name": "x", "event_time": 1}]).db


IN = ibis.schema({"v": "string", "u": "string"})


@functools.cache
def mask_sql(field: str) -> str:
    """SQL over table ``guard_in (v, u)``: the unguarded mask ``ref`` and the guarded one ``got`` of
    ``field``, compiled once (shared inputs are columns of a first projection: compiled inline they
    would repeat)."""
    t = ibis.table(IN, name="guard_in")
    allowed = list(rules.allowed_hashes(field)) if field in rules.SET_FIELDS else []
    t = t.mutate(url=rules.url_fbclid(t.u), url_has=rules.fbclid_in_url(t.u),
                 alw=rules.hash_hex(t.v).isin(allowed) if allowed else ibis.literal(False),
                 ipk=rules.ip_kind_fast(t.v))
    t = t.mutate(url_id=ibis.ifelse(t.url_has, t.url, ""))
    t = t.mutate(seg=ibis.ifelse(t.url_id != "", rules.fbc_fbclid(t.v), ""))
    # the unguarded rule: every primitive computed on every value, null for an empty value
    prims = rules.primitives(t.v, ibis.literal(field), t.alw)
    prims["_url"] = t.url
    ref = ibis.ifelse(rules.nonempty(t.v), rules.value_mask(field, SimpleNamespace(**prims)), ibis.null("int64"))
    # the in-place rule as row_validity builds it
    got = rules.single_value_mask(
        field, t.v, alw=t.alw if allowed else None, ipk=t.ipk if field == "client_ip_address" else None,
        seg=t.seg if field == "fbc" else None, url=t.url_id if field == "fbc" else None)
    return ibis.to_sql(t.select("v", "u", ref=ref, got=got), dialect="duckdb")


@functools.cache
def side_sql() -> str:
    """SQL over ``guard_in``: ``ip_kind`` against ``ip_kind_fast``, ``url_fbclid != ''`` against
    ``fbclid_in_url``."""
    t = ibis.table(IN, name="guard_in")
    return ibis.to_sql(t.select("v", "u", ip_ref=rules.ip_kind(t.v), ip_got=rules.ip_kind_fast(t.v),
                                url_ref=rules.url_fbclid(t.u) != "", url_got=rules.fbclid_in_url(t.u)),
                       dialect="duckdb")


def run(db, sql: str, values: list[str | None], urls: list[str | None]) -> list[dict]:
    rows = [(v, u) for v in values for u in urls]
    data = pa.table({"v": [r[0] for r in rows], "u": [r[1] for r in rows]},
                    schema=pa.schema([("v", pa.string()), ("u", pa.string())]))
    db.con.register("guard_in", data)
    try:
        return db.con.sql(sql).to_arrow_table().to_pylist()
    finally:
        db.con.unregister("guard_in")


def masks(db, values: list[str | None], urls: list[str | None], field: str) -> list[dict]:
    return run(db, mask_sql(field), values, urls)


def compare(db, values: list[str | None], urls: list[str | None]) -> None:
    for f in FIELDS:
        for r in masks(db, values, urls if f == "fbc" else [None], f):
            assert r["got"] == r["ref"], (f, r["v"], r["u"])
    for r in run(db, side_sql(), values, urls):
        assert r["ip_got"] == r["ip_ref"], r["v"]
        assert r["url_got"] == r["url_ref"], r["u"]


def test_rules_guards_equal_plain_rules_on_tricky_values(db):
    compare(db, TRICKY, URLS)


def test_rules_guards_tricky_values_reach_every_branch(db):
    """The table is not vacuous: it holds every defect of every field and every IP kind."""
    t = ibis.memtable({"v": TRICKY}, schema=ibis.schema({"v": "string"}))
    kinds = db.ibis.to_pyarrow(t.select(k=rules.ip_kind_fast(t.v))).column("k").to_pylist()
    assert set(kinds) == {"public", "private", "hashed", "malformed"}
    url = f"https://shop.example/p?fbclid={URL_ID.lower()}"
    for f in FIELDS:
        seen = 0
        for r in masks(db, TRICKY, [url], f):
            seen |= r["got"] or 0
        for d in rules.DEFECTS[f]:
            if (f, d) != ("fbc", "missing_with_fbclid"):  # row-level: no value carries it
                assert seen & rules.DEFECT_BIT[d], (f, d)


PIECES = st.sampled_from([
    EM, EM.upper(), EM[:32], ".AQ", ".Ag", ".XY", ".AQQCAQIB", " ", "\n", "\u00a0", "fb.", "1.", "1596403881668.",
    URL_ID, "null", "{{", "}}", "%%", "-", "::", ":", "ffff:", "10.0.0.1", "203.0.113.7", "2001:db8", "fe80", "a",
    "curl/", "Mozilla/5.0", "0", "f",
])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(PIECES, min_size=1, max_size=4).map("".join), min_size=1, max_size=25))
def test_rules_guards_equal_plain_rules_on_generated_values(db, values):
    compare(db, values, [None, f"https://shop.example/p?fbclid={URL_ID}", "https://shop.example/p?fbclid=x"])
