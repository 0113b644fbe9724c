from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capi_diag.core.normalize import FIELDS, UnknownFieldError, explain_invalid, hash_value, is_hashed, normalize

# docs/meta-examples.md §E1: Meta's own examples (DOC-CIP), with the hashes Meta publishes.
META_EXAMPLES = [
    ("em", "John_Smith@gmail.com", None, "john_smith@gmail.com",
     "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"),
    ("ph", "(650)555-1212", "US", "16505551212",
     "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"),
    ("fn", "Mary", None, "mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
    ("ln", "정", None, "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"),
    ("fn", "Valéry", None, "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
    ("db", "2/16/1997", None, "19970216", "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"),
    ("country", "United States", None, "us",
     "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
    # the extra vectors of §E1
    ("ge", "f", None, "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
    ("ge", "m", None, "m", "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"),
    ("st", "California", "US", "ca", "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"),
    ("zp", "94035", None, "94035", "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"),
    ("ct", "New York", None, "newyork", "350c754ba4d38897693aa077ef43072a859d23f613443133fecbbd90a3512ca5"),
]


@pytest.mark.parametrize(("field", "raw", "region", "normalized", "digest"), META_EXAMPLES)
def test_hash_value_meta_published_examples_match_meta_hashes(field, raw, region, normalized, digest):
    assert normalize(field, raw, region=region) == normalized
    assert hash_value(field, raw, region=region) == digest
    assert explain_invalid(field, raw, region=region) is None


# docs/meta-examples.md §E2: inputs where the Python SDK and capi-param-builder disagree; the expected value
# is Meta's documented rule (docs win), as each field's docstring explains.
SDK_TABLE = [
    ("ph", "+1 (650) 555-1212", None, "16505551212"),        # both SDKs agree
    ("ph", "+44 (0)20 7946 0958", None, "442079460958"),     # both SDKs keep the trunk 0: 4402079460958
    ("ph", "0044 20 7946 0958", None, "442079460958"),       # both SDKs agree
    ("ph", "16505551212 ext 5", None, "16505551212"),        # Python raises; param-builder 165055512125
    ("zp", "94105-1234", None, "94105"),
    ("zp", "SW1A 1AA", None, "sw1a1aa"),                     # param-builder keeps the space
    ("st", "California", None, "california"),                # no region: not guessed (Python)
    ("st", "California", "US", "ca"),                        # US: code (param-builder)
    ("st", "N.Y.", None, "ny"),
    ("st", "Bavaria", None, "bavaria"),                      # param-builder: "ba"
    ("ct", "São Paulo", None, "sãopaulo"),                   # param-builder: "sopaulo"
    ("ct", "Zürich", None, "zürich"),                        # param-builder: "zrich"
    ("country", "USA", None, "us"),                          # Python raises
    ("country", "UK", None, "gb"),                           # param-builder: "uk" (not ISO)
    ("country", "United Kingdom", None, "gb"),
    ("fn", " Mary-Ann ", None, "maryann"),                   # Python: "mary-ann"
    ("ln", "O'Brien", None, "obrien"),                       # Python: "o'brien"
    ("db", "1997-02-16", None, "19970216"),                  # Python: unchanged
    ("db", "02/03/1997", None, "19970203"),                  # ambiguous: month first (as Meta's example)
    ("ge", "Female", None, "f"),
    ("external_id", " User 42 ", None, "User 42"),           # docs: identical everywhere, only trimmed
]


@pytest.mark.parametrize(("field", "raw", "region", "expected"), SDK_TABLE)
def test_normalize_sdk_comparison_inputs_follow_meta_docs(field, raw, region, expected):
    assert normalize(field, raw, region=region) == expected


def test_normalize_email_is_trimmed_and_lowercased():
    assert normalize("em", "  John_Smith@Gmail.COM \n") == "john_smith@gmail.com"


@pytest.mark.parametrize("raw", ["a@b", "john smith@gmail.com", "no-at-sign.com", "a@@b.com", "@b.com"])
def test_normalize_email_invalid_returns_none_with_reason(raw):
    assert normalize("em", raw) is None
    assert hash_value("em", raw) is None
    assert "not an email address" in explain_invalid("em", raw)


def test_normalize_email_md5_digest_is_invalid_with_reason():
    md5 = hashlib.md5(b"john_smith@gmail.com").hexdigest()
    assert normalize("em", md5) is None
    assert "MD5" in explain_invalid("em", md5)


def test_hash_value_sha256_input_passes_through_lowercased_not_rehashed():
    digest = "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F"
    assert hash_value("em", digest) == digest.lower()
    assert normalize("em", f"  {digest} ") == digest.lower()


def test_hash_value_param_builder_appendix_passes_through():
    value = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f.AQQCAQIB"
    assert hash_value("em", value) == value
    assert is_hashed(value)
    assert not is_hashed("john_smith@gmail.com")
    assert not is_hashed(None)


def test_normalize_decomposed_accent_hashes_like_precomposed():
    decomposed = "Vale\u0301ry"
    assert hash_value("fn", decomposed) == "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("(650)555-1212", None, "6505551212"),          # no region: the country code cannot be added
    ("(650) 555-1212", "US", "16505551212"),
    ("020 7946 0958", "GB", "442079460958"),
    ("06 12 34 56 78", "FR", "33612345678"),
    ("06 12 34 56 78", None, "612345678"),          # leading zero dropped, as the docs say
    ("+1 650 555 1212", "GB", "16505551212"),       # an international number ignores the region
    ("00 1 650 555 1212", None, "16505551212"),
    ("1-650-555-1212 x12", None, "16505551212"),
    ("1234567", None, "1234567"),                   # 7 digits: the shortest accepted
    ("123456789012345", None, "123456789012345"),   # 15 digits: the longest (E.164)
])
def test_normalize_phone_cases(raw, region, expected):
    assert normalize("ph", raw, region=region) == expected


@pytest.mark.parametrize(("raw", "region", "reason"), [
    ("123456", None, "6 digits"),
    ("1234567890123456", None, "16 digits"),
    ("call me maybe", None, "letters"),
    ("+1 650 +555", None, "'+'"),
    ("12", "US", "region US"),
])
def test_normalize_phone_invalid_returns_none_with_reason(raw, region, reason):
    assert normalize("ph", raw, region=region) is None
    assert reason in explain_invalid("ph", raw, region=region)


@pytest.mark.parametrize(("raw", "expected"), [
    ("New York", "ny"), ("ny", "ny"), ("N.Y.", "ny"), ("district of columbia", "dc"), ("Puerto Rico", "pr"),
    (" CALIFORNIA ", "ca"),
])
def test_normalize_state_us_region_maps_names_to_codes(raw, expected):
    assert normalize("st", raw, region="US") == expected


def test_normalize_state_us_region_unknown_state_is_invalid():
    assert normalize("st", "Bavaria", region="US") is None
    assert explain_invalid("st", "Bavaria", region="us") == "not a US state name or 2-letter code"


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("94105-1234", "US", "94105"),
    ("941051234", "US", "94105"),
    ("02108", "US", "02108"),
    (" M1 1AE ", "GB", "m11ae"),
    (94105, None, "94105"),
])
def test_normalize_zip_cases(raw, region, expected):
    assert normalize("zp", raw, region=region) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("2108", "leading zero lost"),
    ("SW1A 1AA", "digits only"),
])
def test_normalize_zip_us_invalid_returns_none_with_reason(raw, reason):
    assert normalize("zp", raw, region="US") is None
    assert reason in explain_invalid("zp", raw, region="US")


@pytest.mark.parametrize(("raw", "expected"), [
    ("us", "us"), ("GB", "gb"), ("DEU", "de"), ("Germany", "de"), ("United States of America", "us"),
    ("England", "gb"),
])
def test_normalize_country_maps_codes_and_names(raw, expected):
    assert normalize("country", raw) == expected


def test_normalize_country_unknown_is_invalid_with_reason():
    assert normalize("country", "Narnia") is None
    assert "ISO 3166" in explain_invalid("country", "Narnia")


@pytest.mark.parametrize(("raw", "expected"), [("M", "m"), ("male", "m"), ("Woman", "f"), ("F.", "f")])
def test_normalize_gender_maps_words_to_initial(raw, expected):
    assert normalize("ge", raw) == expected


def test_normalize_gender_other_value_is_invalid():
    assert normalize("ge", "x") is None
    assert explain_invalid("ge", "x") == "not f/m (or female/male)"


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("19970216", None, "19970216"),
    ("1997/02/16", None, "19970216"),
    ("16/02/1997", None, "19970216"),        # first group > 12: day first
    ("02/03/1997", "FR", "19970302"),        # a non-US region reads ambiguous dates day first
    ("02.03.1997", None, "19970302"),        # a dotted date is day first
    ("1900-01-01", None, "19000101"),        # the lowest year Meta accepts
])
def test_normalize_date_of_birth_cases(raw, region, expected):
    assert normalize("db", raw, region=region) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("1899-12-31", "year 1899 outside 1900"),
    ("2/30/1997", "not a calendar date"),
    ("13/13/1997", "not a calendar date"),
    ("Feb 16 1997", "digits and separators only"),
    ("97-02-16", "expected YYYYMMDD"),
    ("9999-01-01", "year 9999 outside"),
])
def test_normalize_date_of_birth_invalid_returns_none_with_reason(raw, reason):
    assert normalize("db", raw) is None
    assert reason in explain_invalid("db", raw)


@pytest.mark.parametrize(("field", "raw"), [("fn", "!!!"), ("ct", "123 -"), ("st", "..")])
def test_normalize_text_fields_without_letters_are_invalid(field, raw):
    assert normalize(field, raw) is None
    assert "no letters" in explain_invalid(field, raw)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_normalize_empty_values_return_none_with_reason_empty(raw):
    for field in FIELDS:
        assert normalize(field, raw) is None
        assert hash_value(field, raw) is None
        assert explain_invalid(field, raw) == "empty"


def test_normalize_non_text_value_is_invalid_not_an_exception():
    assert normalize("em", ["a@b.com"]) is None  # type: ignore[arg-type]
    assert explain_invalid("em", 3.5) == "expected text, found float"  # type: ignore[arg-type]
    assert explain_invalid("ge", True) == "expected text, found bool"  # type: ignore[arg-type]


def test_normalize_unknown_field_raises_naming_valid_fields():
    with pytest.raises(UnknownFieldError, match="unknown user_data field 'email'.*em, ph"):
        normalize("email", "a@b.com")


def test_hash_value_external_id_is_sha256_of_trimmed_value():
    assert hash_value("external_id", " User 42 ") == hashlib.sha256(b"User 42").hexdigest()


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(FIELDS), raw=st.text(max_size=40),
       region=st.sampled_from([None, "US", "GB", "FR"]))
def test_normalize_any_text_never_raises_and_reason_matches_none(field, raw, region):
    value = normalize(field, raw, region=region)
    reason = explain_invalid(field, raw, region=region)
    digest = hash_value(field, raw, region=region)
    assert (value is None) == (reason is not None) == (digest is None)
    if digest is not None:
        assert is_hashed(digest)
        assert digest == digest.lower() or "." in digest
