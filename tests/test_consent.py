from __future__ import annotations

import pytest

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.diagnostics import FAILING_ROW_COLUMNS, consent
from capi_diag.engine.dataset import Dataset

T = 1_700_000_000

EEA_US = """
[consent]
required = ["ad_storage", "ad_user_data"]

[consent.groups]
DACH = ["de", "AT", "CH"]

[consent.regions]
EEA = ["ad_storage", "ad_user_data", "ad_personalization"]
US = []
"""


def row(region=None, **consent_values):
    rec = {"event_name": "Purchase", "event_time": T}
    if region is not None:
        rec["consent_region"] = region
    for purpose, value in consent_values.items():
        rec[f"consent_{purpose}"] = value
    return rec


def analyze(server, text="", **kw):
    ds = Dataset.from_records(server=server, **kw)
    return consent.analyze(ds, Config.from_text(text), {})


def test_consent_default_policy_denied_counts_forwarded():
    r = analyze([
        row(ad_storage="granted", ad_user_data="denied"),
        row(ad_storage="denied", ad_user_data="denied"),
        row(ad_storage="granted", ad_user_data="granted"),
    ])
    assert r["status"] == "evaluated"
    assert r["forwarded_without_consent"] == 2
    assert r["consent_unknown"] == 0
    assert r["consent_ok"] == 1
    assert r["by_purpose"]["ad_storage"] == {"required_rows": 3, "granted": 2, "denied": 1, "missing": 0}
    assert r["by_purpose"]["ad_user_data"] == {"required_rows": 3, "granted": 1, "denied": 2, "missing": 0}


def test_consent_missing_purpose_counts_unknown_not_forwarded():
    r = analyze([
        row(ad_storage="granted"),                      # ad_user_data missing -> unknown
        row(ad_storage="denied"),                       # denied wins -> forwarded, not unknown
        row(ad_storage="granted", ad_user_data="granted"),
    ])
    assert r["forwarded_without_consent"] == 1
    assert r["consent_unknown"] == 1
    assert r["consent_ok"] == 1
    assert r["by_purpose"]["ad_user_data"]["missing"] == 2


def test_consent_non_required_purpose_denied_is_ok():
    r = analyze([row(ad_storage="granted", ad_user_data="granted", analytics_storage="denied")])
    assert r["forwarded_without_consent"] == 0
    assert r["consent_unknown"] == 0
    assert r["by_purpose"]["analytics_storage"]["required_rows"] == 0


def test_consent_no_consent_column_not_evaluated_with_null_counts():
    r = analyze([{"event_name": "Purchase", "event_time": T, "consent_region": "DE"}])
    assert r["status"] == "not_evaluated"
    assert r["forwarded_without_consent"] is None
    assert r["consent_unknown"] is None
    assert r["consent_ok"] is None
    assert r["server_rows"] == 1


def test_consent_eea_vs_us_policy_applies_per_region():
    r = analyze([
        row("DE", ad_storage="granted", ad_user_data="granted"),  # EEA: ad_personalization missing
        row("fr", ad_storage="granted", ad_user_data="granted", ad_personalization="denied"),
        row("US", ad_storage="denied", ad_user_data="denied"),     # nothing required in the US
        row("BR", ad_storage="granted", ad_user_data="denied"),    # default policy
        row(None, ad_storage="granted", ad_user_data="granted"),   # no region: default policy
    ], EEA_US)
    assert r["forwarded_without_consent"] == 2
    assert r["consent_unknown"] == 1
    assert r["consent_ok"] == 2
    assert r["by_region"]["DE"]["required"] == ["ad_storage", "ad_user_data", "ad_personalization"]
    assert r["by_region"]["DE"]["consent_unknown"] == 1
    assert r["by_region"]["FR"]["forwarded_without_consent"] == 1
    assert r["by_region"]["US"] == {"rows": 1, "forwarded_without_consent": 0, "consent_unknown": 0,
                                    "required": [], "known_code": True}
    assert r["by_region"]["BR"]["forwarded_without_consent"] == 1
    assert r["by_region"]["(none)"]["rows"] == 1
    assert r["by_purpose"]["ad_personalization"] == {
        "required_rows": 2, "granted": 0, "denied": 1, "missing": 1}


def test_consent_code_listed_alone_wins_over_group():
    text = EEA_US + 'DE = ["ad_storage"]\n'
    r = analyze([row("DE", ad_storage="granted", ad_user_data="denied")], text)
    assert r["forwarded_without_consent"] == 0
    assert r["by_region"]["DE"]["required"] == ["ad_storage"]


def test_consent_first_listed_group_wins():
    text = """
[consent.groups]
DACH = ["DE", "AT", "CH"]
[consent.regions]
DACH = ["analytics_storage"]
EEA = ["ad_storage"]
"""
    r = analyze([row("AT", ad_storage="denied", analytics_storage="granted"),
                 row("FR", ad_storage="denied")], text)
    assert r["by_region"]["AT"]["required"] == ["analytics_storage"]
    assert r["forwarded_without_consent"] == 1
    assert r["by_region"]["FR"]["forwarded_without_consent"] == 1


def test_consent_unrecognized_region_follows_default_and_is_counted():
    r = analyze([row("Germany", ad_storage="granted"),
                 row("  ", ad_storage="granted", ad_user_data="granted")])
    assert r["unrecognized_region_rows"] == 1
    assert r["by_region"]["GERMANY"]["known_code"] is False
    assert r["by_region"]["(none)"]["rows"] == 1
    assert r["consent_unknown"] == 1


def test_consent_missing_region_column_uses_default():
    r = analyze([row(ad_storage="granted", ad_user_data="granted")], EEA_US)
    assert r["region_column"] is False
    assert r["consent_ok"] == 1


def test_consent_empty_server_log_counts_zero():
    ds = Dataset.from_records(server=[], columns={
        "server": ["event_name", "event_time", "consent_ad_storage"],
        "browser": ["event_name", "event_time"]})
    r = consent.analyze(ds, Config(), {})
    assert r["status"] == "evaluated"
    assert r["server_rows"] == 0
    assert r["forwarded_without_consent"] == 0
    assert r["by_region"] == {}


def test_consent_examples_earliest_first_limited():
    server = [dict(row(ad_storage="denied"), event_time=T + 10 - i, event_id=f"e{i}") for i in range(5)]
    r = analyze(server, "[consent]\nexamples = 2\n")
    ex = r["examples"]["forwarded_without_consent"]
    assert [e["event_id"] for e in ex] == ["e4", "e3"]
    assert ex[0]["detail"] == "ad_storage denied; ad_user_data missing"


def test_consent_failing_rows_one_per_row_with_severity():
    ds = Dataset.from_records(server=[row(ad_storage="denied"), row(ad_storage="granted"),
                                      row(ad_storage="granted", ad_user_data="granted")])
    df = ds.query(consent.failing_rows(ds, Config())).to_pandas()
    assert list(df.columns) == list(FAILING_ROW_COLUMNS)
    assert sorted(zip(df.finding, df.severity, strict=True)) == [("consent_unknown", "warning"),
                                                    ("forwarded_without_consent", "error")]
    assert set(df.detail) == {"ad_storage denied; ad_user_data missing", "ad_user_data missing"}


def test_consent_failing_rows_not_evaluated_is_empty():
    ds = Dataset.from_records(server=[{"event_name": "Purchase", "event_time": T}])
    assert ds.query(consent.failing_rows(ds, Config())).num_rows == 0


@pytest.mark.parametrize("text, fragment", [
    ('[consent]\nrequired = ["ad_storag"]\n', "Did you mean 'ad_storage'"),
    ('[consent.regions]\nUK = []\n', "GB"),
    ('[consent.regions]\nEAA = []\n', "Did you mean group 'EEA'"),
    ('[consent.groups]\nX = ["ZZ"]\n', "'ZZ' in [consent.groups] X"),
    ('[consent]\nrequierd = []\n', "Did you mean 'required'"),
])
def test_consent_policy_bad_config_raises_config_error(text, fragment):
    with pytest.raises(ConfigError, match=None) as e:
        consent.policy(Config.from_text(text))
    assert fragment in str(e.value)


def test_consent_explain_not_evaluated_says_so():
    r = analyze([{"event_name": "Purchase", "event_time": T}])
    [entry] = consent.explain(r)
    assert entry["value"] is None and "Not evaluated" in entry["text"]
