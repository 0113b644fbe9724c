"""Value rules: every rule on a table of tiny cases, checked through ``row_validity`` (the engine).

All cases live in one server log, one row each (``event_id`` = case id), so that one engine run
serves the whole table. Expected: whether the row is present / valid for the field, and the exact
set of defects it carries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from typing import Any

import ibis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capi_diag.engine import rules
from capi_diag.engine.dataset import Dataset

TODAY = dt.date(2024, 6, 30)


def h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


EM = h("john_smith@gmail.com")
FBP = "fb.1.1596403881668.1116446470"
FBC = "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")

# (case id, field, values, valid (None = not present), defects, extra record fields)
CASES: list[tuple[str, str, Any, bool | None, set[str], dict[str, Any]]] = [
    # hash shape, appendix, case, whitespace, junk
    ("em_ok", "em", [EM], True, set(), {}),
    ("em_appendix8", "em", [EM + ".AQQCAQIB"], True, set(), {}),
    ("em_appendix_token", "em", [EM + ".Ag"], True, set(), {}),
    ("em_appendix_unknown_token", "em", [EM + ".XY"], False, {"unhashed"}, {}),
    ("em_appendix_7", "em", [EM + ".AQQCAQI"], False, {"unhashed"}, {}),
    ("em_upper", "em", [EM.upper()], False, {"uppercase_hash"}, {}),
    ("em_upper_appendix", "em", [EM.upper() + ".AQQAAQIB"], False, {"uppercase_hash"}, {}),
    ("em_space", "em", [" " + EM], False, {"unhashed", "surrounding_whitespace"}, {}),
    ("em_newline", "em", [EM + "\n"], False, {"unhashed", "surrounding_whitespace"}, {}),
    ("em_nbsp", "em", [EM + "\u00a0"], False, {"unhashed", "surrounding_whitespace"}, {}),
    ("em_raw", "em", ["John_Smith@gmail.com"], False, {"unhashed"}, {}),
    ("em_md5", "em", [hashlib.md5(b"x").hexdigest()], False, {"unhashed"}, {}),
    ("em_65hex", "em", [EM + "a"], False, {"unhashed"}, {}),
    ("em_hash_of_empty", "em", [h("")], False, {"hashed_empty"}, {}),
    ("em_hash_of_empty_upper", "em", [h("").upper()], False, {"hashed_empty", "uppercase_hash"}, {}),
    ("em_hash_of_null", "em", [h("null")], False, {"hashed_placeholder"}, {}),
    ("em_hash_of_undefined_appendix", "em", [h("undefined") + ".BA"], False, {"hashed_placeholder"}, {}),
    ("em_undefined", "em", ["undefined"], False, {"unhashed", "placeholder"}, {}),
    ("em_template", "em", ["{{Email}}"], False, {"unhashed", "placeholder"}, {}),
    ("em_object", "em", [" [object Object] "], False, {"unhashed", "placeholder"}, {}),
    # multi-valued cells
    ("em_multi_ok", "em", [EM, h("jane@x.com")], True, set(), {}),
    ("em_multi_one_raw", "em", [EM, "jane@x.com"], False, {"unhashed"}, {}),
    ("em_multi_two_raw", "em", ["a@x.com", "b@x.com"], False, {"unhashed"}, {}),
    ("em_multi_mixed", "em", ["a@x.com", EM.upper(), h("")], False,
     {"unhashed", "uppercase_hash", "hashed_empty"}, {}),
    ("em_blank_values_ignored", "em", [EM, "", "   ", None], True, set(), {}),
    ("em_only_blank", "em", ["", " \t"], None, set(), {}),
    ("em_null", "em", None, None, set(), {}),
    ("ph_ok", "ph", [h("16505551212")], True, set(), {}),
    ("ph_raw", "ph", ["+1 (650) 555-1212"], False, {"unhashed"}, {}),
    ("ct_ok", "ct", [h("newyork")], True, set(), {}),
    # closed sets: ge, country, db
    ("ge_f", "ge", [h("f")], True, set(), {}),
    ("ge_m_appendix", "ge", [h("m") + ".AQQCAQIB"], True, set(), {}),
    ("ge_female", "ge", [h("Female")], False, {"not_normalized"}, {}),
    ("ge_female_lower", "ge", [h("female")], False, {"not_normalized"}, {}),
    ("ge_f_upper", "ge", [h("f").upper()], False, {"uppercase_hash"}, {}),
    ("ge_empty_hash", "ge", [h("")], False, {"hashed_empty"}, {}),
    ("ge_raw", "ge", ["f"], False, {"unhashed"}, {}),
    ("country_us", "country", [h("us")], True, set(), {}),
    ("country_usa", "country", [h("USA")], False, {"not_normalized"}, {}),
    ("country_upper_code", "country", [h("US")], False, {"not_normalized"}, {}),
    ("country_uk", "country", [h("uk")], False, {"not_normalized"}, {}),
    ("country_gb", "country", [h("gb")], True, set(), {}),
    ("db_ok", "db", [h("19970216")], True, set(), {}),
    ("db_dashes", "db", [h("1990-01-31")], False, {"not_normalized"}, {}),
    ("db_first_day", "db", [h("19000101")], True, set(), {}),
    ("db_before_1900", "db", [h("18991231")], False, {"not_normalized"}, {}),
    ("db_today", "db", [h("20240630")], True, set(), {}),
    ("db_tomorrow", "db", [h("20240701")], False, {"not_normalized"}, {}),
    ("db_feb30", "db", [h("19970230")], False, {"not_normalized"}, {}),
    ("db_multi_one_bad", "db", [h("19970216"), h("1997-02-16")], False, {"not_normalized"}, {}),
    # external_id
    ("xid_raw", "external_id", ["user-42"], True, {"unhashed"}, {}),
    ("xid_hash", "external_id", [h("user-42")], True, set(), {}),
    ("xid_hash_appendix", "external_id", [h("user42") + ".AQQCAQIB"], True, set(), {}),
    ("xid_empty_hash", "external_id", [h("")], False, {"hashed_empty"}, {}),
    ("xid_null_hash", "external_id", [h("NULL")], False, {"hashed_placeholder"}, {}),
    ("xid_undefined", "external_id", ["undefined"], False, {"unhashed", "placeholder"}, {}),
    # fbp / fbc
    ("fbp_ok", "fbp", [FBP], True, set(), {}),
    ("fbp_appendix", "fbp", [FBP + ".AQQAAQIB"], True, set(), {}),
    ("fbp_token", "fbp", [FBP + ".Bg"], True, set(), {}),
    ("fbp_12_digit_ms", "fbp", ["fb.1.159640388166.1116446470"], False, {"malformed"}, {}),
    ("fbp_letters", "fbp", ["fb.1.abc.X"], False, {"malformed"}, {}),
    ("fbp_three_segments", "fbp", ["fb.1.1596403881668"], False, {"malformed"}, {}),
    ("fbp_space", "fbp", [FBP + " "], False, {"malformed"}, {}),
    ("fbp_hashed", "fbp", [h(FBP)], False, {"hashed"}, {}),
    ("fbp_hashed_appendix", "fbp", [h(FBP) + ".AQQCAQIB"], False, {"hashed"}, {}),
    ("fbp_undefined", "fbp", ["undefined"], False, {"malformed", "placeholder"}, {}),
    ("fbc_ok", "fbc", [FBC], True, set(), {}),
    ("fbc_appendix", "fbc", [FBC + ".AQQDAQIB"], True, set(), {}),
    ("fbc_hashed", "fbc", [h(FBC).upper()], False, {"hashed"}, {}),
    ("fbc_encoded", "fbc", ["fb.1.1554763741205.IwAR%2F4"], False, {"malformed"}, {}),
    ("fbc_missing_with_fbclid", "fbc", None, None, {"missing_with_fbclid"},
     {"event_source_url": "https://shop.example/p?utm_source=fb&fbclid=IwAR2F4abc#top"}),
    ("fbc_empty_fbclid_param", "fbc", None, None, set(), {"event_source_url": "https://shop.example/?fbclid="}),
    ("fbc_fbclid_in_fragment", "fbc", None, None, set(),
     {"event_source_url": "https://shop.example/#x?fbclid=IwAR2F4abc"}),
    ("fbc_present_with_fbclid", "fbc", ["fb.1.1554763741205.IwAR2F4abc"], True, set(),
     {"event_source_url": "https://shop.example/?fbclid=IwAR2F4abc"}),
    ("fbc_modified_fbclid", "fbc", ["fb.1.1554763741205.iwar2f4abc"], True, {"modified_fbclid"},
     {"event_source_url": "https://shop.example/?fbclid=IwAR2F4abc"}),
    ("fbc_other_click", "fbc", ["fb.1.1554763741205.OLDCLICK"], True, set(),
     {"event_source_url": "https://shop.example/?fbclid=NEWCLICK"}),
    # IPv4
    ("ip_doc_range", "client_ip_address", ["203.0.113.7"], True, set(), {}),
    ("ip_appendix", "client_ip_address", ["203.0.113.7.AQQAAQIB"], True, set(), {}),
    ("ip_public", "client_ip_address", ["8.8.8.8"], True, set(), {}),
    ("ip_10", "client_ip_address", ["10.0.0.1"], False, {"private"}, {}),
    ("ip_0", "client_ip_address", ["0.0.0.0"], False, {"private"}, {}),
    ("ip_127", "client_ip_address", ["127.0.0.1"], False, {"private"}, {}),
    ("ip_cgnat_low", "client_ip_address", ["100.64.0.1"], False, {"private"}, {}),
    ("ip_cgnat_high", "client_ip_address", ["100.127.255.254"], False, {"private"}, {}),
    ("ip_100_63", "client_ip_address", ["100.63.255.255"], True, set(), {}),
    ("ip_100_128", "client_ip_address", ["100.128.0.1"], True, set(), {}),
    ("ip_link_local", "client_ip_address", ["169.254.10.1"], False, {"private"}, {}),
    ("ip_172_15", "client_ip_address", ["172.15.255.255"], True, set(), {}),
    ("ip_172_16", "client_ip_address", ["172.16.0.1"], False, {"private"}, {}),
    ("ip_172_31", "client_ip_address", ["172.31.255.255"], False, {"private"}, {}),
    ("ip_172_32", "client_ip_address", ["172.32.0.1"], True, set(), {}),
    ("ip_192_168", "client_ip_address", ["192.168.1.20"], False, {"private"}, {}),
    ("ip_192_169", "client_ip_address", ["192.169.0.1"], True, set(), {}),
    ("ip_multicast", "client_ip_address", ["224.0.0.251"], False, {"private"}, {}),
    ("ip_239", "client_ip_address", ["239.255.255.250"], False, {"private"}, {}),
    ("ip_223", "client_ip_address", ["223.255.255.255"], True, set(), {}),
    ("ip_broadcast", "client_ip_address", ["255.255.255.255"], False, {"private"}, {}),
    ("ip_port", "client_ip_address", ["203.0.113.7:8080"], False, {"malformed"}, {}),
    ("ip_list", "client_ip_address", ["203.0.113.7, 198.51.100.2"], False, {"malformed"}, {}),
    ("ip_list_nospace", "client_ip_address", ["203.0.113.7,198.51.100.2"], False, {"malformed"}, {}),
    ("ip_octet_256", "client_ip_address", ["256.1.1.1"], False, {"malformed"}, {}),
    ("ip_leading_zero", "client_ip_address", ["010.1.1.1"], False, {"malformed"}, {}),
    ("ip_space", "client_ip_address", [" 203.0.113.7"], False, {"malformed"}, {}),
    ("ip_hashed", "client_ip_address", [h("203.0.113.7")], False, {"hashed"}, {}),
    ("ip_unknown", "client_ip_address", ["unknown"], False, {"malformed", "placeholder"}, {}),
    # IPv6
    ("ip6_doc", "client_ip_address", ["2001:db8::1"], True, set(), {}),
    ("ip6_meta", "client_ip_address", ["2a03:2880:f12f:83:face:b00c::25de"], True, set(), {}),
    ("ip6_upper", "client_ip_address", ["2001:DB8:0:0:0:0:0:1"], True, set(), {}),
    ("ip6_appendix", "client_ip_address", ["2001:db8::1.AQQAAQIB"], True, set(), {}),
    ("ip6_loopback", "client_ip_address", ["::1"], False, {"private"}, {}),
    ("ip6_loopback_full", "client_ip_address", ["0000:0000:0000:0000:0000:0000:0000:0001"], False,
     {"private"}, {}),
    ("ip6_unspecified", "client_ip_address", ["::"], False, {"private"}, {}),
    ("ip6_ula_fc", "client_ip_address", ["fc00::1"], False, {"private"}, {}),
    ("ip6_ula_fd", "client_ip_address", ["FD12:3456:789a::1"], False, {"private"}, {}),
    ("ip6_link_local", "client_ip_address", ["fe80::1ff:fe23:4567:890a"], False, {"private"}, {}),
    ("ip6_link_local_end", "client_ip_address", ["febf::1"], False, {"private"}, {}),
    ("ip6_fec0", "client_ip_address", ["fec0::1"], True, set(), {}),
    ("ip6_multicast", "client_ip_address", ["ff02::1"], False, {"private"}, {}),
    ("ip6_mapped_private", "client_ip_address", ["::ffff:10.0.0.1"], False, {"private"}, {}),
    ("ip6_mapped_private_full", "client_ip_address", ["0:0:0:0:0:ffff:192.168.0.1"], False, {"private"}, {}),
    ("ip6_mapped_public", "client_ip_address", ["::ffff:203.0.113.7"], True, set(), {}),
    ("ip6_mapped_hex_private", "client_ip_address", ["::ffff:c0a8:101"], False, {"private"}, {}),
    ("ip6_mapped_hex_loopback", "client_ip_address", ["::FFFF:7F00:1"], False, {"private"}, {}),
    ("ip6_mapped_hex_cgnat", "client_ip_address", ["::ffff:6440:1"], False, {"private"}, {}),
    ("ip6_mapped_hex_public", "client_ip_address", ["::ffff:cb00:7107"], True, set(), {}),
    ("ip6_mapped_hex_short", "client_ip_address", ["::ffff:a00:1"], False, {"private"}, {}),
    ("ip6_bracket_port", "client_ip_address", ["[2001:db8::1]:443"], False, {"malformed"}, {}),
    ("ip6_zone", "client_ip_address", ["fe80::1%eth0"], False, {"malformed"}, {}),
    ("ip6_two_gaps", "client_ip_address", ["2001::db8::1"], False, {"malformed"}, {}),
    ("ip6_nine_groups", "client_ip_address", ["1:2:3:4:5:6:7:8:9"], False, {"malformed"}, {}),
    ("ip6_multi_public_private", "client_ip_address", ["2001:db8::1", "fe80::1"], False, {"private"}, {}),
    # user agents
    ("ua_chrome", "client_user_agent", [CHROME], True, set(), {}),
    ("ua_python_requests", "client_user_agent", ["python-requests/2.31.0"], False, {"non_browser"}, {}),
    ("ua_curl", "client_user_agent", ["curl/8.4.0"], False, {"non_browser"}, {}),
    ("ua_node_fetch", "client_user_agent", ["node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"], False,
     {"non_browser"}, {}),
    ("ua_axios", "client_user_agent", ["axios/1.6.2"], False, {"non_browser"}, {}),
    ("ua_go", "client_user_agent", ["Go-http-client/2.0"], False, {"non_browser"}, {}),
    ("ua_okhttp", "client_user_agent", ["okhttp/4.12.0"], False, {"non_browser"}, {}),
    ("ua_java", "client_user_agent", ["Java/17.0.2"], False, {"non_browser"}, {}),
    ("ua_postman", "client_user_agent", ["PostmanRuntime/7.36.0"], False, {"non_browser"}, {}),
    ("ua_wget", "client_user_agent", ["Wget/1.21.4"], False, {"non_browser"}, {}),
    ("ua_perl", "client_user_agent", ["libwww-perl/6.72"], False, {"non_browser"}, {}),
    ("ua_apache", "client_user_agent", ["Apache-HttpClient/4.5.14 (Java/17)"], False, {"non_browser"}, {}),
    ("ua_hashed", "client_user_agent", [h(CHROME)], False, {"hashed"}, {}),
    ("ua_undefined", "client_user_agent", ["undefined"], False, {"placeholder"}, {}),
]


@pytest.fixture(scope="module")
def verdicts() -> dict[str, dict[str, Any]]:
    records = []
    for cid, field, values, _, _, extra in CASES:
        rec: dict[str, Any] = {"event_name": "PageView", "event_time": 1_700_000_000, "event_id": cid, **extra}
        if values is not None:
            rec[field] = values
        records.append(rec)
    ds = Dataset.from_records(server=records)
    rv = rules.row_validity(ds.events("server"), today=TODAY)
    rows = ds.query(rv).to_pylist()
    assert len(rows) == len(CASES)
    return {r["event_id"]: r for r in rows}


@pytest.mark.parametrize(("cid", "field", "values", "valid", "defects", "extra"), CASES, ids=[c[0] for c in CASES])
def test_rules_row_validity_case_matches_expected_verdict(verdicts, cid, field, values, valid, defects, extra):
    row = verdicts[cid]
    assert row[f"{field}_present"] is (valid is not None)
    assert row[f"{field}_valid"] is bool(valid)
    found = {d for d in rules.DEFECTS[field] if row[f"{field}_{d}"]}
    assert found == defects


def test_rules_row_validity_other_fields_untouched_by_a_case(verdicts):
    # A row carries only its own field: every other field is absent, not valid, defect-free.
    row = verdicts["em_raw"]
    for f in rules.MATCH_KEY_FIELDS:
        if f == "em":
            continue
        assert not row[f"{f}_present"] and not row[f"{f}_valid"]
        assert not any(row[f"{f}_{d}"] for d in rules.DEFECTS[f] if d != "missing_with_fbclid")


def test_rules_row_validity_keeps_columns_and_one_row_per_event():
    recs = [{"event_name": "Lead", "event_time": 5, "event_id": "a", "line": 7, "action_source": "website",
             "lead_id": ["123"], "em": [EM, "x@y.z"]},
            {"event_name": "Lead", "event_time": 5, "event_id": "a", "line": 7, "action_source": "website"}]
    ds = Dataset.from_records(server=recs)
    rv = rules.row_validity(ds.events("server"), keep=["action_source"], fields=["em", "lead_id"])
    rows = sorted(ds.query(rv).to_pylist(), key=lambda r: r["em_present"])
    assert len(rows) == 2
    assert set(rows[0]) == {"row_id", "source_file", "file_index", "line", "event_name", "event_id", "action_source",
                            "em_present", "em_valid", "lead_id_present", "lead_id_valid",
                            *(f"em_{d}" for d in rules.DEFECTS["em"])}
    assert [r["line"] for r in rows] == [7, 7]
    assert [r["em_unhashed"] for r in rows] == [False, True]
    assert [r["lead_id_valid"] for r in rows] == [False, True]


def test_rules_row_validity_unknown_field_raises():
    ds = Dataset.from_records(server=[{"event_name": "Lead", "event_time": 1}])
    with pytest.raises(ValueError, match="unknown user_data field 'email'"):
        rules.row_validity(ds.events("server"), fields=["email"])


def test_rules_value_valid_on_a_plain_column():
    ds = Dataset.from_records(server=[{"event_name": "x", "event_time": 1}])
    t = ibis.memtable({"v": [EM, EM.upper(), "a@b.c", None, "  "]})
    out = ds.db.ibis.to_pyarrow(t.select(ok=rules.value_valid("em", t.v))).column("ok").to_pylist()
    assert out == [True, False, False, False, False]
    d = rules.value_defects("country", t.v)
    assert list(d) == list(rules.DEFECTS["country"])


def test_rules_allowed_values_sets():
    assert rules.allowed_values("ge") == ("f", "m")
    countries = rules.allowed_values("country")
    assert "us" in countries and "gb" in countries and "uk" not in countries and len(countries) == 249
    days = rules.allowed_values("db", dt.date(1900, 1, 3))
    assert days == ("19000101", "19000102", "19000103")
    assert len(rules.allowed_hashes("db", TODAY)) == (TODAY - dt.date(1900, 1, 1)).days + 1
    with pytest.raises(ValueError):
        rules.allowed_values("em")


def test_rules_severity_errors_are_unhashed_pii_hashed_context_and_malformed_fbc():
    assert rules.severity("em", "unhashed") == "error"
    assert rules.severity("external_id", "unhashed") == "warning"
    assert rules.severity("client_user_agent", "hashed") == "error"
    assert rules.severity("fbc", "malformed") == "error"
    assert rules.severity("fbp", "malformed") == "warning"
    assert rules.severity("em", "hashed_empty") == "warning"


def test_rules_regexes_are_anchored():
    for name in ("HASH_RE", "LOWER_HASH_RE", "FBP_RE", "FBC_RE", "IPV4_RE", "IPV6_RE", "PLACEHOLDER_RE",
                 "SPACED_HASH_RE", "BLANK_RE"):
        pattern = getattr(rules, name)
        assert pattern.startswith(r"\A") and pattern.endswith(r"\z"), name


# -- IPv6 syntax: the portable regex agrees with Python's ipaddress -------------------------------------

_PY_IPV6 = re.compile(rules.IPV6_RE.replace(r"\z", r"\Z"))


def _py_valid_v6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF:.", max_size=45))
def test_rules_ipv6_regex_matches_exactly_what_ipaddress_accepts(text):
    assert bool(_PY_IPV6.match(text)) == _py_valid_v6(text)


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses(v=6))
def test_rules_ipv6_regex_accepts_every_written_form(addr):
    for form in (str(addr), addr.exploded, addr.exploded.upper(), str(addr).upper()):
        assert _PY_IPV6.match(form), form


def _expected_kind(text: str) -> str:
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv6Address):
        low = text.lower()
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        elif "." in low and int(addr) >> 32 == 0:  # IPv4-compatible ::a.b.c.d
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        else:
            bad6 = [ipaddress.ip_network(n) for n in ("::1/128", "::/128", "fc00::/7", "fe80::/10", "ff00::/8")]
            return "private" if any(addr in n for n in bad6) else "public"
    bad4 = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
                                              "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
                                              "224.0.0.0/4", "240.0.0.0/4")]
    return "private" if any(addr in n for n in bad4) else "public"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.ip_addresses(v=4).map(lambda a: "::ffff:{:x}:{:x}".format(int(a) >> 16, int(a) & 0xFFFF)),
    st.sampled_from(["10.0.0.1", "172.16.5.4", "100.64.1.1", "fe80::1", "fd00::1", "::1", "ff02::2"]),
), min_size=1, max_size=30))
def test_rules_ip_kind_in_engine_matches_python_reference(ip_db, addrs):
    t = ibis.memtable({"v": addrs})
    got = ip_db.ibis.to_pyarrow(t.select(k=rules.ip_kind(t.v))).column("k").to_pylist()
    assert got == [_expected_kind(a) for a in addrs]


@pytest.fixture(scope="module")
def ip_db():
    return Dataset.from_records(server=[{"event_name": "x", "event_time": 1}]).db


def test_folded_literals_keep_three_valued_logic():
    """``rules.folded`` drops only literal operands: over x in (true, false, null) every folded
    expression returns what the unfolded one returns, row by row, and the constant ones fold to a
    Python bool."""
    con = ibis.duckdb.connect()
    t = ibis.memtable({"x": [True, False, None], "s": ["a", "", None]})
    T, F = ibis.literal(True), ibis.literal(False)
    x, s = t.x, t.s
    cases = [x & T, T & x, x & F, x | T, F | x, ~(x & T), ~T & x, (s != "") & (ibis.literal("") != ""),
             (x | F) & ~F, ~(T & F) & x]
    for e in cases:
        f = rules.folded(e)
        want = con.execute(t.select(v=e)).v.tolist()
        got = [f] * 3 if isinstance(f, bool) else con.execute(t.select(v=f)).v.tolist()
        assert [None if v != v else v for v in got] == [None if v != v else v for v in want], ibis.to_sql(t.select(v=e))
    assert rules.folded(x & F) is False and rules.folded(~T & x) is False and rules.folded(x | T) is True
    assert rules.folded(T & ~F) is True and rules.folded(x) is x


def test_value_mask_of_a_lowercase_hash_carries_no_literal_conditions():
    """The mask of a value judged in place leaves the defects its branch rules out as constants (a
    lowercase hash is not uppercase_hash), so the SQL holds no ``NOT (TRUE)`` and no ``WHEN FALSE``."""
    t = ibis.table({"v": "string"}, name="t")
    sql = ibis.to_sql(t.select(m=rules.single_value_mask("em", t.v)), dialect="duckdb")
    assert not re.search(r"WHEN (TRUE|FALSE)\b|NOT \(\s*TRUE\s*\)|TRUE AND|AND TRUE", sql)
