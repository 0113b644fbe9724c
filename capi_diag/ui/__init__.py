"""The Streamlit dashboard: the only package of capi_diag that imports streamlit.

``state`` keeps each browser session's database, dataset and analyses in ``st.session_state``;
``views`` reshapes report sections into small tables (pure, no streamlit); ``charts`` builds the
plotly figures (pure); ``lookup`` finds one event's rows and findings; ``layout`` holds the pieces
every page shares; ``navigation`` lists the pages and draws the sidebar; ``pages/`` holds one short
script per page.

May import: every layer of the package but :mod:`capi_diag.cli` (a front end; nothing imports it).
:mod:`.session` is plain Python (no Streamlit), the rest draws pages.
"""
