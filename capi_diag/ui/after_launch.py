"""The "After launch" page's data, without Streamlit: tables and trend charts from the monitor's
history (:mod:`capi_diag.monitor.history`), the alerts in words, and the before/after comparison's rows.

The trends are aggregates the history's DuckDB computes (hourly counts per side; Meta's figures per
snapshot); the figures are Meta's own, so none is called "Pairing rate" (that label is the uploaded
logs' figure on the other pages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from capi_diag.core import fmt
from capi_diag.monitor.compare import metric_words, value_words
from capi_diag.monitor.history import History
from capi_diag.ui.charts import OKABE_ITO, count_axis, empty

ALERT_WORDS: dict[str, str] = {
    "silent": "Event went silent",
    "source_ratio": "Server to browser ratio moved",
    "emq_drop": "Event Match Quality fell",
    "coverage_drop": "Coverage fell",
    "dedup_drop": "Dedup key coverage fell",
    "volume": "Hourly count out of range",
}
DEDUP_SIDES = {"browser": "Browser events with", "server": "Server events with"}


def figure_words(metric: str) -> str:
    """An alert's figure in words: ``match_key:email`` -> ``Match key coverage: email``."""
    if metric.startswith("match_key:"):
        return "Match key coverage: " + metric.split(":", 1)[1]
    if metric.startswith("dedupe:"):
        _, key, side = (metric.split(":") + ["", ""])[:3]
        return f"{DEDUP_SIDES.get(side, side)} {key}"
    return {"emq": "Event Match Quality (Meta)", "event_coverage": "Event coverage (Meta)",
            "count": "Events in the last complete hours", "count_last_hour": "Events in the last complete hour",
            "server_browser_ratio": "Server to browser ratio"}.get(metric, metric)


def _value(metric: str, v: Any) -> str:
    if v is None:
        return "-"
    if metric == "emq":
        return fmt.number(v, 1)
    if metric in ("event_coverage",) or metric.startswith(("match_key:", "dedupe:")):
        return f"{fmt.number(v, 1)} %"
    return fmt.number(v, 2)


def alerts_table(rows: Sequence[Mapping[str, Any]], *, cleared: bool) -> pd.DataFrame:
    """Alerts as the page shows them: what, which event and figure, baseline, now, since (and cleared)."""
    out = []
    for a in rows:
        row = {"Alert": ALERT_WORDS.get(a["kind"], a["kind"]), "Event": a["event_name"],
               "Figure": figure_words(a["metric"]), "Baseline": _value(a["metric"], a["baseline"]),
               "When raised": _value(a["metric"], a["now"]), "Raised": fmt.timestamp(a["raised_at"])}
        if cleared:
            row["Cleared"] = fmt.timestamp(a["cleared_at"])
            row["At clearing"] = _value(a["metric"], a["cleared_now"])
        row["What"] = a["detail"]
        out.append(row)
    cols = ["Alert", "Event", "Figure", "Baseline", "When raised", "Raised"] + \
        (["Cleared", "At clearing"] if cleared else []) + ["What"]
    return pd.DataFrame(out, columns=cols)


def _deploy_lines(fig: go.Figure, deploys: Sequence[Mapping[str, Any]]) -> None:
    for d in deploys:
        x = pd.to_datetime(d["at"], unit="s", utc=True)
        fig.add_vline(x=x.timestamp() * 1000, line_dash="dash", line_color=OKABE_ITO["purple"])
        fig.add_annotation(x=x, y=1, yref="paper", text=f"Deploy: {d['label']}" if d["label"] else "Deploy",
                           showarrow=False, xanchor="left", font=dict(color=OKABE_ITO["purple"]))


def _frame(fig: go.Figure, title: str, y: str) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), xaxis_title="Time (UTC)", yaxis_title=y,
                      height=360, template="plotly_white", margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))
    return fig


def counts_chart(history: History, pixel: str, event: str, deploys: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Events per complete hour by side (Meta's ``/stats`` ``event_source``), deploys marked."""
    rows = history.source_trend(pixel, event)
    title = f"{event}: events per hour by source (Meta's counts)"
    if not rows:
        return empty(title, "No hourly counts in the history for this event yet.")
    df = pd.DataFrame(rows)
    df["hour"] = pd.to_datetime(df["bucket_start"], unit="s", utc=True)
    fig = go.Figure()
    for side, name, color, dash in (("browser", "Browser (Pixel)", OKABE_ITO["sky"], "solid"),
                                    ("server", "Server (CAPI)", OKABE_ITO["vermillion"], "dash")):
        # dashed server line: where both sides send the same count, the two lines stay visible
        fig.add_scatter(x=df["hour"], y=df[side].fillna(0), name=name, mode="lines+markers",
                        line=dict(color=color, dash=dash, width=3 if dash == "solid" else 2))
    fig.update_yaxes(**count_axis(float(df[["browser", "server"]].max().max() or 0)))
    _deploy_lines(fig, deploys)
    return _frame(fig, title, "Events per hour")


def quality_chart(history: History, pixel: str, event: str, deploys: Sequence[Mapping[str, Any]], *,
                  emq: bool) -> go.Figure:
    """Meta's Event Match Quality (``emq``) or its coverage figures per snapshot, deploys marked."""
    rows = history.quality_trend(pixel, event)
    title = (f"{event}: Event Match Quality per snapshot (Meta, 0-10)" if emq
             else f"{event}: match key and event coverage per snapshot (Meta, %)")
    df = pd.DataFrame(rows, columns=["taken_at", "metric", "value"])
    df = df[df["metric"] == "emq"] if emq else df[df["metric"].str.startswith("match_key:")
                                                  | (df["metric"] == "event_coverage")]
    if df.empty:
        return empty(title, "Meta sent no such figure for this event in the history.")
    df = df.assign(when=pd.to_datetime(df["taken_at"], unit="s", utc=True))
    fig = go.Figure()
    palette = [OKABE_ITO[c] for c in ("blue", "orange", "green", "purple", "sky", "vermillion", "grey")]
    for i, (metric, part) in enumerate(df.groupby("metric", sort=True)):
        fig.add_scatter(x=part["when"], y=part["value"], name=figure_words(str(metric)), mode="lines+markers",
                        line=dict(color=palette[i % len(palette)]))
    fig.update_yaxes(range=[0, 10.2] if emq else [0, 102])
    _deploy_lines(fig, deploys)
    return _frame(fig, title, "Score (0-10)" if emq else "Coverage (%)")


def comparison_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """The comparison's changes in words, worse first (as :func:`capi_diag.monitor.compare.changes` orders)."""
    rows = [{"Worse": "yes" if c["worse"] else "", "Figure": metric_words(c["metric"]),
             "Event": c["event_name"] or "All events", "Before": value_words(c["before"], c["metric"]),
             "After": value_words(c["after"], c["metric"])} for c in doc["changes"]]
    return pd.DataFrame(rows, columns=["Worse", "Figure", "Event", "Before", "After"])
