"""In-process timing of the Test Events sender's local validation of a 10-event batch.

    python bench/validate_timing.py [--repeat 5]      # prints JSON

Builds batches of ten events (two five-event test journeys, :func:`capi_diag.meta.payload.build_journey`,
each batch with its own event ids and browser ids), validates one as a warm-up (the first call
imports the analyses and opens the validation database), then times :func:`validate_events` on
``--repeat`` further batches with every rule on (``validate.SECTIONS`` as shipped) and prints the
times, their median and the sections that ran. Run from the repository folder by ``bench/run.py``
in a fresh process, so it measures the checked-out engine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NOW = 1_800_000_000
EVENTS_PER_BATCH = 10


def batch(i: int) -> list[dict]:
    from capi_diag.meta.payload import build_journey

    rng = random.Random(i)
    events = build_journey(now=NOW + i, rng=rng) + build_journey(now=NOW + i, rng=rng, fbclid=f"IwAR{i:06d}bench")
    assert len(events) == EVENTS_PER_BATCH
    return events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    from capi_diag.testevents import validate
    import_s = time.perf_counter() - t0

    batches = [batch(i) for i in range(args.repeat + 1)]
    t0 = time.perf_counter()
    validate.validate_events(batches[0])
    warmup_s = time.perf_counter() - t0
    times, last = [], None
    for events in batches[1:]:
        t0 = time.perf_counter()
        last = validate.validate_events(events)
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "events": EVENTS_PER_BATCH, "import_s": import_s, "warmup_s": warmup_s, "times_s": times,
        "median_s": statistics.median(times),
        "sections_configured": list(validate.SECTIONS),
        "sections_run": list(last.sections) if last else [],
        "sections_unavailable": list(last.unavailable) if last else [],
        "findings": len(last.findings) if last else 0,
    }))


if __name__ == "__main__":
    main()
