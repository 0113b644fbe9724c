"""Local validation of Test Events batches with the analyses' own rules."""

from __future__ import annotations

import random

from capi_diag.meta.payload import build_journey
from capi_diag.testevents.validate import validate_events


def test_validate_second_batch_judged_on_its_own_rows_not_the_first():
    clean = build_journey(now=1_800_000_000, rng=random.Random(1))
    first = validate_events(clean)
    assert first.errors == []
    dirty = build_journey(now=1_800_000_000, rng=random.Random(2))
    dirty[0]["user_data"]["em"] = ["Mary.Smith@Example.com"]
    second = validate_events(dirty)
    assert [(f.position, f.section, f.finding, f.detail) for f in second.errors] == [
        (1, "match_keys", "unhashed", "em")]
    assert second.blocks_send
