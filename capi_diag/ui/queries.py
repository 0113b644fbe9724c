"""Small engine queries the pages need beyond the report (a chart's bins), built on the analyses'
shared expressions so a definition is never copied. Results are kept per analysis
(:meth:`capi_diag.ui.state.Analysis.keep`)."""

from __future__ import annotations

import pandas as pd

from capi_diag.core.config import Config
from capi_diag.engine.dataset import Dataset
from capi_diag.ui.views import DELAY_BUCKETS


def delay_bins(ds: Dataset, config: Config) -> pd.DataFrame:
    """Server rows per delivery-delay bucket (``sent_at - event_time``); empty without ``sent_at``."""
    from capi_diag.diagnostics import bucket_counts, timing

    if not ds.has("server", "sent_at"):
        return pd.DataFrame(columns=["label", "rows"])
    s = timing.annotated_server_rows(ds, config)
    s = s.filter(s.delay_s.notnull())
    counts = bucket_counts(ds.using(config), "ui.delay_bins", s, "delay_s",
                           [(lo, hi) for _, lo, hi in DELAY_BUCKETS])
    if not counts:
        return pd.DataFrame(columns=["label", "rows"])
    return pd.DataFrame([{"label": label, "rows": counts.get(i, 0)} for i, (label, _, _) in enumerate(DELAY_BUCKETS)])
