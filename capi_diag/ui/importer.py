"""The Import page's two actions: start importing uploads into a new session database (in the
background, see :class:`capi_diag.ui.state.ImportJob`), and apply a config to the current data.

Unusable files and invalid configs are shown with ``st.error`` (the error's title and its message
naming the file and the fix), never as a traceback; the session keeps its previous data then.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from capi_diag.core.config import Config
from capi_diag.core.errors import CapiDiagError
from capi_diag.ui import session, state


def read_config(upload: session.Upload | None) -> tuple[Config, str | None]:
    """The uploaded TOML as a :class:`Config` (defaults when none); raises ``ConfigError``."""
    if upload is None:
        return Config(), None
    text = upload.getvalue().decode("utf-8", errors="replace")
    return Config.from_text(text, source=upload.name), upload.name


def run_import(browser: Sequence[session.Upload], server: Sequence[session.Upload],
               config_upload: session.Upload | None, assume_tz: str, *, orders: Sequence[session.Upload] = (),
               send_log: Sequence[session.Upload] = ()) -> session.ImportJob | None:
    """Start the import and its first analysis in the background; ``None`` (and the error shown)
    when the config is invalid. The sidebar shows the progress; when it is done, the page open then shows the
    new data (the Import page: what was imported, and a link to the checklist)."""
    try:
        config, name = read_config(config_upload)
    except CapiDiagError as e:
        st.error(f"**{e.title}.** {e}", icon=":material/error:")
        return None
    return state.start_import(browser, server, config=config, config_name=name,
                              assume_tz=assume_tz.strip() or "UTC", orders=orders, send_log=send_log)


def apply_config(ws: session.Workspace, upload: session.Upload | None) -> None:
    """Re-run the analyses of the current data with the uploaded config (no re-import)."""
    try:
        config, name = read_config(upload)
        previous = (ws.config, ws.config_name)
        ws.with_config(config, name)
        try:
            bar = st.progress(0.0, text="Analysing with the new config...")
            ws.analysis(progress=lambda msg, frac: bar.progress(min(max(frac, 0.0), 1.0), text=msg))
            bar.empty()
        except CapiDiagError:
            ws.with_config(*previous)
            raise
    except CapiDiagError as e:
        st.error(f"**{e.title}.** {e}", icon=":material/error:")
        return
    st.success(f"Config {name} applied: every page now uses it.", icon=":material/check_circle:")
