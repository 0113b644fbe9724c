"""Small engine queries the pages need beyond the report (a chart's bins), built on the analyses'
shared expressions so a definition is never copied. Results are kept per analysis
(:meth:`capi_diag.ui.state.Analysis.keep`)."""

from __future__ import annotations

import ibis
import pandas as pd

from capi_diag.config import Config
from capi_diag.dataset import Dataset
from capi_diag.ui.views import DELAY_BUCKETS


def delay_bins(ds: Dataset, config: Config) -> pd.DataFrame:
    """Server rows per delivery-delay bucket (``sent_at - event_time``); empty without ``sent_at``."""
    from capi_diag.diagnostics import timing

    if not ds.has("server", "sent_at"):
        return pd.DataFrame(columns=["label", "rows"])
    s = timing.annotated_server_rows(ds, config)
    s = s.filter(s.delay_s.notnull())
    branches = []
    for i, (_, lo, hi) in enumerate(DELAY_BUCKETS):
        cond = ibis.literal(True)
        if lo is not None:
            cond = cond & (s.delay_s >= lo)
        if hi is not None:
            cond = cond & (s.delay_s <= hi)
        branches.append((cond, i))
    b = s.mutate(_b=ibis.cases(*branches))
    g = b.group_by("_b").aggregate(rows=b.count()).execute()
    counts = dict(zip(g["_b"].astype(int), g["rows"].astype(int), strict=True))
    if not counts:
        return pd.DataFrame(columns=["label", "rows"])
    return pd.DataFrame([{"label": label, "rows": counts.get(i, 0)} for i, (label, _, _) in enumerate(DELAY_BUCKETS)])
