"""Plotly figures for the dashboard. Pure functions from small tables to figures, no streamlit.

Every chart is readable without hovering: a title, axis titles with units, values written on bars
or cells where it helps, in the analyst's words (:mod:`capi_diag.core.labels`) and the one number format
(:mod:`capi_diag.core.fmt`). Charts tell the truth: count axes have whole-number ticks, a line is never
drawn through an hour without data, and a threshold is drawn where it lies. Colours are Okabe-Ito
(colour-blind safe); a status is never told by colour alone.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from capi_diag.core import fmt, labels

OKABE_ITO = {
    "green": "#009E73", "orange": "#E69F00", "vermillion": "#D55E00", "sky": "#56B4E9",
    "blue": "#0072B2", "yellow": "#F0E442", "purple": "#CC79A7", "grey": "#8C8C8C", "black": "#000000",
}
OUTCOME_COLORS = {
    "paired": OKABE_ITO["green"], "outside_window": OKABE_ITO["orange"],
    "browser_only": OKABE_ITO["sky"], "server_only": OKABE_ITO["vermillion"],
}
OUTCOME_LABELS = {
    "paired": "Paired", "outside_window": "Both logs, more than {window} apart",
    "browser_only": "Browser only", "server_only": "Server only",
}
FONT = dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=13)


def _layout(fig: go.Figure, title: str, x: str, y: str, *, height: int = 420) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), xaxis_title=x, yaxis_title=y,
                      height=height, font=FONT, template="plotly_white", margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1,
                                  traceorder="normal"),
                      uniformtext=dict(minsize=10, mode="hide"))
    return fig


def count_axis(max_value: float | None) -> dict[str, Any]:
    """Axis settings for a count: whole-number ticks with thousands separators, from zero (a step of
    1 while the counts are small, so plotly never ticks 0.5)."""
    axis: dict[str, Any] = {"tickformat": ",d", "rangemode": "tozero"}
    if max_value is None or (isinstance(max_value, float) and math.isnan(max_value)) or max_value < 10:
        axis["dtick"] = 1
    return axis


def _max(*series: pd.Series) -> float:
    values = [float(x.max()) for x in series if len(x)]
    return max(values) if values else 0.0


def empty(title: str, message: str) -> go.Figure:
    """A chart frame that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=15, color="#555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "", height=260)


def pairing_by_event(df: pd.DataFrame, window: str = "48 h") -> go.Figure:
    """Stacked horizontal bars: dedup keys per ``event_name`` by outcome (columns of
    :data:`OUTCOME_COLORS`)."""
    title = "Dedup keys per event name, by outcome"
    if df.empty:
        return empty(title, "No dedup keys: no event carries an event_id.")
    df = df.iloc[::-1]  # largest at the top
    fig = go.Figure()
    for outcome, color in OUTCOME_COLORS.items():
        fig.add_bar(y=df["event_name"], x=df[outcome], name=OUTCOME_LABELS[outcome].format(window=window),
                    orientation="h", marker_color=color, text=df[outcome].map(lambda v: fmt.count(v) if v else ""),
                    textposition="inside", insidetextanchor="middle")
    fig.update_layout(barmode="stack", xaxis=count_axis(_max(df[list(OUTCOME_COLORS)].sum(axis=1))))
    return _layout(fig, title, "Dedup keys (event name + event ID)", "Event name",
                   height=max(260, 60 + 34 * len(df)))


def pairing_over_time(df: pd.DataFrame) -> go.Figure:
    """Pairing rate per hour (line, left axis) over dedup keys per hour (bars, right axis). An hour
    without keys has no rate: the line stops there instead of being drawn through it."""
    title = "Pairing rate per hour (UTC)"
    if df.empty:
        return empty(title, "No dedup keys to plot.")
    fig = go.Figure()
    fig.add_bar(x=df["hour"], y=df["keys"], name="Dedup keys in the hour", marker_color="#D9E2EC", yaxis="y2")
    fig.add_scatter(x=df["hour"], y=df["rate"] * 100, name="Pairing rate", mode="lines+markers",
                    line=dict(color=OKABE_ITO["blue"], width=2), marker=dict(size=4), connectgaps=False,
                    hovertemplate="%{x|%Y-%m-%d %H:00} UTC: %{y:.1f} %<extra></extra>")
    fig.update_layout(yaxis=dict(range=[0, 105], ticksuffix=" %"),
                      yaxis2=dict(title="Dedup keys per hour", overlaying="y", side="right", showgrid=False,
                                  **count_axis(_max(df["keys"]))))
    return _layout(fig, title, "Hour of the key's first event (UTC)", "Pairing rate")


def _labelled_bars(df: pd.DataFrame, column: str, color: str, name: str) -> go.Figure:
    """One bar per ``label`` with its count written above it (readable without hovering)."""
    fig = go.Figure()
    fig.add_bar(x=df["label"], y=df[column], marker_color=color,
                text=df[column].map(lambda v: fmt.count(v) if v else ""), textposition="outside", cliponaxis=False,
                name=name)
    fig.update_layout(yaxis=count_axis(_max(df[column])))
    return fig


def threshold_position(bins: pd.DataFrame, value: float) -> float | None:
    """Where ``value`` (seconds) lies on the categorical axis of ``bins`` (``min_s``/``max_s``
    inclusive whole seconds, ``None`` for an open end): bin ``i`` spans ``i - 0.5`` to ``i + 0.5``.
    A positive threshold flags skews strictly above it, so its line sits just after ``value``; a
    negative one just before it."""
    edge = value + 0.5 if value >= 0 else value - 0.5
    for i, (lo, hi) in enumerate(zip(bins["min_s"], bins["max_s"], strict=True)):
        lo_v = -math.inf if lo is None or pd.isna(lo) else float(lo) - 0.5
        hi_v = math.inf if hi is None or pd.isna(hi) else float(hi) + 0.5
        if lo_v <= edge <= hi_v:
            if edge == hi_v:
                return i + 0.5
            if edge == lo_v:
                return i - 0.5
            if math.isinf(lo_v) or math.isinf(hi_v):
                return float(i)  # inside an open-ended bin: its middle
            return i - 0.5 + (edge - lo_v) / (hi_v - lo_v)
    return None


def skew_histogram(df: pd.DataFrame, threshold_s: float | None) -> go.Figure:
    """Paired keys per skew bin (``lo``, ``hi`` seconds, ``keys``); the threshold marked both sides."""
    title = "Skew of paired dedup keys: server event_time minus browser event_time"
    if df.empty:
        return empty(title, "No paired dedup keys: nothing to measure.")
    fig = _labelled_bars(df, "keys", OKABE_ITO["blue"], "Paired dedup keys")
    if threshold_s is not None:
        for sign in (1, -1):
            x = threshold_position(df, sign * float(threshold_s))
            if x is None:
                continue
            fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="paper",
                          line=dict(color=OKABE_ITO["vermillion"], width=2, dash="dash"))
            fig.add_annotation(x=x, y=1, xref="x", yref="paper", showarrow=False, yanchor="bottom",
                               xanchor="left" if sign > 0 else "right",
                               text=f"{'+' if sign > 0 else '-'}{fmt.duration(threshold_s)} threshold",
                               font=dict(color=OKABE_ITO["vermillion"]))
    return _layout(fig, title, "Skew (negative: the server's time is earlier)", "Paired dedup keys")


def delay_histogram(df: pd.DataFrame) -> go.Figure:
    title = "Delivery delay: sent_at minus event_time (server rows)"
    if df.empty:
        return empty(title, "No sent_at in the server log: delivery delay cannot be measured.")
    fig = _labelled_bars(df, "rows", OKABE_ITO["sky"], "Server rows")
    return _layout(fig, title, "Delay (sent_at minus event_time)", "Server rows")


def coverage_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Valid coverage (0-1) with fields as rows and event names as columns; the % written in each cell."""
    title = "Valid coverage of each match key, per event name (server rows)"
    if matrix.empty:
        return empty(title, "No server rows.")
    z = matrix.to_numpy(dtype=float) * 100
    text = [[("" if v != v else fmt.share(v / 100, 0)) for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(matrix.columns), y=[labels.field_with_code(f) for f in matrix.index], zmin=0, zmax=100,
        colorscale="Cividis", text=text, texttemplate="%{text}",
        colorbar=dict(title="Valid coverage", ticksuffix=" %"),
        hovertemplate="%{y} on %{x}: %{z:.1f} %<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, "Event name", "Customer information field", height=max(360, 60 + 30 * len(matrix)))


def emq_by_event(df: pd.DataFrame, target: float = 6.0) -> go.Figure:
    title = "EMQ estimate per event name (0-10)"
    if df.empty:
        return empty(title, "No website server events to score.")
    colors = [OKABE_ITO["green"] if v >= target else OKABE_ITO["orange"] for v in df["estimate"]]
    fig = go.Figure(go.Bar(x=df["event_name"], y=df["estimate"], marker_color=colors,
                           text=df["estimate"].map(lambda v: fmt.score(v, scale=False)), textposition="inside",
                           insidetextanchor="end", cliponaxis=False))
    fig.add_hline(y=target, line_dash="dash", line_color=OKABE_ITO["black"],
                  annotation_text=f"Target {target:.1f}", annotation_position="top right")
    fig.update_yaxes(range=[0, 10.5])
    return _layout(fig, title, "Event name", "EMQ estimate (0-10)")


def priorities(df: pd.DataFrame) -> go.Figure:
    title = "Estimated EMQ gain from full valid coverage of each field"
    if df.empty:
        return empty(title, "Nothing to gain: every field is at full valid coverage.")
    df = df.iloc[::-1]
    names = df["label"] if "label" in df.columns else df["field"].map(labels.field_with_code)
    fig = go.Figure(go.Bar(y=names, x=df["gain"], orientation="h", marker_color=OKABE_ITO["blue"],
                           text=df["gain"].map(lambda v: f"+{fmt.number(v)}"), textposition="outside",
                           cliponaxis=False))
    return _layout(fig, title, "Estimated gain (EMQ points)", "Field", height=max(260, 60 + 30 * len(df)))


def consent_by_region(df: pd.DataFrame) -> go.Figure:
    title = "Server rows by consent outcome, per region"
    if df.empty:
        return empty(title, "No consent data.")
    df = df.iloc[::-1]
    fig = go.Figure()
    for col, name, color in (("forwarded_without_consent", "Forwarded without consent", OKABE_ITO["vermillion"]),
                             ("consent_unknown", "Consent unknown", OKABE_ITO["orange"]),
                             ("ok", "Consent as required", OKABE_ITO["green"])):
        fig.add_bar(y=df["region"], x=df[col], name=name, orientation="h", marker_color=color,
                    text=df[col].map(lambda v: fmt.count(v) if v else ""), textposition="inside")
    fig.update_layout(barmode="stack", xaxis=count_axis(_max(df["rows"]) if "rows" in df else None))
    return _layout(fig, title, "Server rows", "Region (ISO code)", height=max(260, 60 + 30 * len(df)))


def counts_bar(df: pd.DataFrame, title: str, x: str, y: str, *, color: str = OKABE_ITO["vermillion"]) -> go.Figure:
    """Horizontal bars of ``rows`` per ``name`` (finding counts, ``name`` already in words)."""
    if df.empty:
        return empty(title, "Nothing found.")
    df = df.iloc[::-1]
    fig = go.Figure(go.Bar(y=df["name"], x=df["rows"], orientation="h", marker_color=color,
                           text=df["rows"].map(fmt.count), textposition="outside", cliponaxis=False))
    fig.update_layout(xaxis=count_axis(_max(df["rows"])))
    return _layout(fig, title, x, y, height=max(240, 60 + 30 * len(df)))


def order_waterfall(df: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """The orders' waterfall as a funnel of buckets (each order in one), counts and shares written on
    the bars; a stage that was not evaluated is left out and named in the title."""
    title = "Where each order ends"
    shown = df[df["Orders"].notna()]
    if shown.empty or int(shown["Orders"].sum()) == 0:
        return empty(title, "No order to follow.")
    skipped = [n for n, o in zip(df["Where the order ends"], df["Orders"], strict=True) if pd.isna(o)]
    if skipped:
        title += f" (not evaluated: {', '.join(skipped)})"
    fig = go.Figure(go.Funnel(
        y=list(shown["Where the order ends"]), x=[int(v) for v in shown["Orders"]],
        text=[f"{fmt.count(int(o))} orders ({s})" for o, s in zip(shown["Orders"], shown["Share"], strict=True)],
        textinfo="text", marker={"color": [colors.get(s, OKABE_ITO["grey"]) for s in shown["stage"]]},
        hovertext=shown["Revenue"], connector={"line": {"color": OKABE_ITO["grey"]}}))
    return _layout(fig, title, "Orders", "", height=360)


def waterfall_by_day(df: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """Orders per UTC day, stacked by bucket."""
    title = "Orders per day (UTC), by where they end"
    if df.empty:
        return empty(title, "No order to follow.")
    fig = go.Figure()
    for stage, part in df.groupby("stage", sort=False):
        fig.add_trace(go.Bar(x=part["day"], y=part["orders"], name=part["name"].iloc[0],
                             marker_color=colors.get(str(stage), OKABE_ITO["grey"])))
    fig.update_layout(barmode="stack", yaxis=count_axis(float(df.groupby("day")["orders"].sum().max())))
    return _layout(fig, title, "Day (UTC)", "Orders")
