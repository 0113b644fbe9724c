"""The Import page's two actions: import uploads into a new session database, apply a config.

Unusable files and invalid configs are shown with ``st.error`` (the error's title and its message
naming the file and the fix), never as a traceback; the session keeps its previous data then.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from capi_diag.config import Config
from capi_diag.errors import CapiDiagError
from capi_diag.ui import state
from capi_diag.ui.navigation import page_path


def read_config(upload: state.Upload | None) -> tuple[Config, str | None]:
    """The uploaded TOML as a :class:`Config` (defaults when none); raises ``ConfigError``."""
    if upload is None:
        return Config(), None
    text = upload.getvalue().decode("utf-8", errors="replace")
    return Config.from_text(text, source=upload.name), upload.name


def run_import(browser: Sequence[state.Upload], server: Sequence[state.Upload],
               config_upload: state.Upload | None, assume_tz: str) -> None:
    """Import, analyse once, make it this session's data and open the checklist."""
    bar = st.progress(0.0, text="Reading files...")
    try:
        config, name = read_config(config_upload)
        ws = state.import_workspace(browser, server, config=config, config_name=name,
                                    assume_tz=assume_tz.strip() or "UTC",
                                    progress=lambda msg, frac: bar.progress(min(max(frac, 0.0), 1.0), text=msg))
    except CapiDiagError as e:
        bar.empty()
        st.error(f"**{e.title}.** {e}", icon=":material/error:")
        return
    except Exception as e:  # noqa: BLE001 - an analyst sees one clear line, never a traceback
        bar.empty()
        files = ", ".join(f.name for f in [*browser, *server])
        st.error(f"**Import failed.** {files}: {type(e).__name__}: {e}. Check that each file is a CSV, "
                 "JSON Lines or Parquet event log, or report this error with the file's first lines.",
                 icon=":material/error:")
        return
    bar.empty()
    state.replace(ws)
    info = ws.dataset.inputs
    rejected = sum(int(info.get(r, {}).get("rejected_rows") or 0) for r in ("browser", "server"))
    rows = {r: int(info.get(r, {}).get("rows") or 0) for r in ("browser", "server")}
    msg = (f"Imported {rows['browser']:,} browser and {rows['server']:,} server events in "
           f"{ws.import_seconds:.1f} s.")
    if rejected:
        msg += f" {rejected:,} rows were rejected: see the Import page for the reasons."
    if not server:
        msg += (" No server (CAPI) log was imported, so the checks of server events are not evaluated: "
                "add it on the Import page.")
    if not browser:
        msg += (" No browser (Pixel) log was imported, so pairing and skew are not evaluated: "
                "add it on the Import page.")
    state.notify(msg)
    st.switch_page(page_path("checklist"))


def apply_config(ws: state.Workspace, upload: state.Upload | None) -> None:
    """Re-run the analyses of the current data with the uploaded config (no re-import)."""
    try:
        config, name = read_config(upload)
        previous = (ws.config, ws.config_name)
        ws.with_config(config, name)
        try:
            ws.analysis()
        except CapiDiagError:
            ws.with_config(*previous)
            raise
    except CapiDiagError as e:
        st.error(f"**{e.title}.** {e}", icon=":material/error:")
        return
    st.success(f"Config {name} applied: every page now uses it.", icon=":material/check_circle:")
