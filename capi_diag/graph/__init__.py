"""The former home of the Graph API modules, kept for the documented import path
``capi_diag.graph.client`` (:mod:`capi_diag.meta.client`). New code imports :mod:`capi_diag.meta`."""
