"""Plotly figures for the dashboard. Pure functions from small tables to figures, no streamlit.

Every chart is readable without hovering: a title, axis titles with units, values written on bars
or cells where it helps. Colours are Okabe-Ito (colour-blind safe); a status is never told by
colour alone.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

OKABE_ITO = {
    "green": "#009E73", "orange": "#E69F00", "vermillion": "#D55E00", "sky": "#56B4E9",
    "blue": "#0072B2", "yellow": "#F0E442", "purple": "#CC79A7", "grey": "#8C8C8C", "black": "#000000",
}
OUTCOME_COLORS = {
    "paired": OKABE_ITO["green"], "outside_window": OKABE_ITO["orange"],
    "browser_only": OKABE_ITO["sky"], "server_only": OKABE_ITO["vermillion"],
}
OUTCOME_LABELS = {
    "paired": "Paired", "outside_window": "Both logs, > 48 h apart",
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


def empty(title: str, message: str) -> go.Figure:
    """A chart frame that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=15, color="#555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "", height=260)


def pairing_by_event(df: pd.DataFrame) -> go.Figure:
    """Stacked horizontal bars: keys per ``event_name`` by outcome (columns of :data:`OUTCOME_COLORS`)."""
    title = "Dedup keys per event name, by outcome"
    if df.empty:
        return empty(title, "No keys: no event carries an event_id.")
    df = df.iloc[::-1]  # largest at the top
    fig = go.Figure()
    for outcome, color in OUTCOME_COLORS.items():
        fig.add_bar(y=df["event_name"], x=df[outcome], name=OUTCOME_LABELS[outcome], orientation="h",
                    marker_color=color, text=df[outcome].map(lambda v: f"{v:,}" if v else ""),
                    textposition="inside", insidetextanchor="middle")
    fig.update_layout(barmode="stack")
    return _layout(fig, title, "Keys (event_name, event_id)", "Event name",
                   height=max(260, 60 + 34 * len(df)))


def pairing_over_time(df: pd.DataFrame) -> go.Figure:
    """Pairing rate per hour (line, left axis) over keys per hour (bars, right axis)."""
    title = "Pairing rate per hour (UTC)"
    if df.empty:
        return empty(title, "No keys to plot.")
    fig = go.Figure()
    fig.add_bar(x=df["hour"], y=df["keys"], name="Keys in the hour", marker_color="#D9E2EC", yaxis="y2")
    fig.add_scatter(x=df["hour"], y=df["rate"] * 100, name="Pairing rate", mode="lines+markers",
                    line=dict(color=OKABE_ITO["blue"], width=2), marker=dict(size=4))
    fig.update_layout(yaxis=dict(range=[0, 105], ticksuffix=" %"),
                      yaxis2=dict(title="Keys per hour", overlaying="y", side="right", showgrid=False))
    return _layout(fig, title, "Hour of the key's first event (UTC)", "Pairing rate (%)")


def _labelled_bars(df: pd.DataFrame, column: str, color: str, name: str) -> go.Figure:
    """One bar per ``label`` with its count written above it (readable without hovering)."""
    fig = go.Figure()
    fig.add_bar(x=df["label"], y=df[column], marker_color=color,
                text=df[column].map(lambda v: f"{v:,}" if v else ""), textposition="outside", cliponaxis=False,
                name=name)
    return fig


def skew_histogram(df: pd.DataFrame, threshold_s: float | None) -> go.Figure:
    """Paired keys per skew bin (``lo``, ``hi`` seconds, ``keys``); the threshold marked both sides."""
    title = "Skew of paired keys: server event_time - browser event_time"
    if df.empty:
        return empty(title, "No paired keys: nothing to measure.")
    fig = _labelled_bars(df, "keys", OKABE_ITO["blue"], "Keys")
    if threshold_s is not None:
        fig.add_annotation(text=f"|skew| threshold: {threshold_s:,.0f} s", xref="paper", yref="paper",
                           x=1, y=1.08, showarrow=False, font=dict(color=OKABE_ITO["vermillion"]))
    return _layout(fig, title, "Skew (seconds; negative = server earlier)", "Paired keys")


def delay_histogram(df: pd.DataFrame) -> go.Figure:
    title = "Delivery delay: sent_at - event_time (server rows)"
    if df.empty:
        return empty(title, "No sent_at in the server log: delivery delay cannot be measured.")
    fig = _labelled_bars(df, "rows", OKABE_ITO["sky"], "Rows")
    return _layout(fig, title, "Delay (bucket)", "Server rows")


def coverage_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Valid coverage (0-1) with fields as rows and event names as columns; the % written in each cell."""
    title = "Valid coverage of each match key, per event name (server rows)"
    if matrix.empty:
        return empty(title, "No server rows.")
    z = matrix.to_numpy(dtype=float)
    text = [[("" if v != v else f"{v:.0%}") for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(matrix.columns), y=list(matrix.index), zmin=0, zmax=1, colorscale="Cividis",
        text=text, texttemplate="%{text}", colorbar=dict(title="Valid coverage", tickformat=".0%"),
        hovertemplate="%{y} on %{x}: %{z:.1%}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, "Event name", "user_data field", height=max(360, 60 + 30 * len(matrix)))


def emq_by_event(df: pd.DataFrame, target: float = 6.0) -> go.Figure:
    title = "EMQ estimate per event name (0-10)"
    if df.empty:
        return empty(title, "No website server events to score.")
    colors = [OKABE_ITO["green"] if v >= target else OKABE_ITO["orange"] for v in df["estimate"]]
    fig = go.Figure(go.Bar(x=df["event_name"], y=df["estimate"], marker_color=colors,
                           text=df["estimate"].map(lambda v: f"{v:.1f}"), textposition="outside", cliponaxis=False))
    fig.add_hline(y=target, line_dash="dash", line_color=OKABE_ITO["black"],
                  annotation_text=f"Meta's target {target:.1f}", annotation_position="top left")
    fig.update_yaxes(range=[0, 10.5])
    return _layout(fig, title, "Event name", "EMQ estimate (0-10)")


def priorities(df: pd.DataFrame) -> go.Figure:
    title = "Estimated EMQ gain from full valid coverage of each field"
    if df.empty:
        return empty(title, "Nothing to gain: every field is at full valid coverage.")
    df = df.iloc[::-1]
    fig = go.Figure(go.Bar(y=df["field"], x=df["gain"], orientation="h", marker_color=OKABE_ITO["blue"],
                           text=df["gain"].map(lambda v: f"+{v:.2f}"), textposition="outside", cliponaxis=False))
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
                    text=df[col].map(lambda v: f"{v:,}" if v else ""), textposition="inside")
    fig.update_layout(barmode="stack")
    return _layout(fig, title, "Server rows", "Region (ISO code)", height=max(260, 60 + 30 * len(df)))


def counts_bar(df: pd.DataFrame, title: str, x: str, y: str, *, color: str = OKABE_ITO["vermillion"]) -> go.Figure:
    """Horizontal bars of ``rows`` per ``name`` (finding counts)."""
    if df.empty:
        return empty(title, "Nothing found.")
    df = df.iloc[::-1]
    fig = go.Figure(go.Bar(y=df["name"], x=df["rows"], orientation="h", marker_color=color,
                           text=df["rows"].map(lambda v: f"{v:,}"), textposition="outside", cliponaxis=False))
    return _layout(fig, title, x, y, height=max(240, 60 + 30 * len(df)))
