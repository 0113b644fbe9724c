"""The pandas baseline: dedup counts and match-key coverage as an analyst would write them in a notebook.

    python bench/pandas_baseline.py BROWSER.csv SERVER.csv      # prints the results as JSON

``bench/run.py`` times this script as a whole process against ``python -m capi_diag report`` on the
same files (the target: capi-diag at least 5 times faster at 1M server events). It computes
what an analyst checking a CAPI set-up would compute first, with ``read_csv``, ``merge`` and
``groupby``, for the column names of the demo generator's files (the Pixel's ``event``/``eventID``/
``timestamp``; the CAPI payload's dotted ``user_data.*`` paths):

* **dedup**, per key ``(event_name, event_id)`` (``pixel_id`` first when both logs carry it, as
  capi-diag does): ``paired`` (in both logs with a browser and a server row at most 48 h apart),
  ``outside_window`` (in both logs, no such pair), ``browser_only``, ``server_only``. Rows without
  an ``event_id`` (empty or blank) have no key; rows whose time cannot be read are dropped, as
  capi-diag's import rejects them; the time (``event_time``, the Pixel's ``timestamp``) is read in
  every form the logs may carry, in either log: Unix seconds, milliseconds or microseconds, or
  ISO-8601 text.
* **match-key coverage**: the share of server rows with a non-empty ``em``, ``ph``, ``fbp``, ``fbc``,
  ``client_ip_address``, ``client_user_agent`` and ``external_id``.

The same definitions as capi-diag's ``dedup`` and ``match_keys`` sections, so ``bench/run.py``
checks that both tools print the same numbers before comparing their speed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pandas as pd

WINDOW_S = 48 * 3600
KEY_FIELDS = ("em", "ph", "fbp", "fbc", "client_ip_address", "client_user_agent", "external_id")


def event_seconds(raw: pd.Series) -> pd.Series:
    """``event_time`` in any form the logs may carry, as integer UTC seconds (NaN when unreadable):
    Unix seconds, milliseconds (>= 1e11) or microseconds (>= 1e14), or ISO-8601 text (without a
    zone taken as UTC), as capi-diag's import reads it."""
    t = pd.to_numeric(raw, errors="coerce")
    t = np.where(t.abs() >= 1e14, t / 1e6, np.where(t.abs() >= 1e11, t / 1e3, t))
    out = pd.Series(np.floor(t), index=raw.index)
    text = raw[out.isna() & raw.notna()]
    if len(text):
        ts = pd.to_datetime(text.str.strip(), utc=True, format="ISO8601", errors="coerce")
        out.loc[text.index] = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return out


def load_log(path: str, renames: dict[str, str] | None = None) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str)
    df = df.rename(columns=renames or {})
    t = event_seconds(df["event_time"])
    df = df[t.notna()].copy()
    df["event_time"] = t[t.notna()].astype("int64")
    return df


def load_browser(path: str) -> pd.DataFrame:
    return load_log(path, {"event": "event_name", "eventID": "event_id", "timestamp": "event_time"})


def load_server(path: str) -> pd.DataFrame:
    return load_log(path)


def non_empty(s: pd.Series) -> pd.Series:
    return s.notna() & (s.str.strip() != "")


def dedup_counts(browser: pd.DataFrame, server: pd.DataFrame) -> dict[str, int]:
    keys = ["event_name", "event_id"]
    if "pixel_id" in browser.columns and "pixel_id" in server.columns:
        keys = ["pixel_id", *keys]
    b = browser[non_empty(browser["event_id"])][[*keys, "event_time"]]
    s = server[non_empty(server["event_id"])][[*keys, "event_time"]]

    b_keys = b[keys].drop_duplicates()
    s_keys = s[keys].drop_duplicates()
    both = b_keys.merge(s_keys, on=keys)

    pairs = b.merge(s, on=keys, suffixes=("_browser", "_server"))
    close = (pairs["event_time_server"] - pairs["event_time_browser"]).abs() <= WINDOW_S
    paired = pairs[close].groupby(keys, dropna=False).size()

    return {
        "paired": int(len(paired)),
        "outside_window": int(len(both) - len(paired)),
        "browser_only": int(len(b_keys) - len(both)),
        "server_only": int(len(s_keys) - len(both)),
    }


def coverage(server: pd.DataFrame) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for field in KEY_FIELDS:
        col = f"user_data.{field}"
        present = int(non_empty(server[col]).sum()) if col in server.columns else 0
        out[field] = present / len(server) if len(server) else None
    return out


def analyse(browser_path: str, server_path: str) -> dict[str, Any]:
    browser = load_browser(browser_path)
    server = load_server(server_path)
    return {
        "rows": {"browser": int(len(browser)), "server": int(len(server))},
        "dedup": dedup_counts(browser, server),
        "coverage": coverage(server),
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/pandas_baseline.py BROWSER.csv SERVER.csv")
    print(json.dumps(analyse(sys.argv[1], sys.argv[2]), indent=2))
