"""The verdict: the pre-launch checklist and the ten-minute promotion window.

Pure judgements over the analyses' results (:mod:`.checklist`) and a state machine with time passed in
(:mod:`.promotion`).

May import: :mod:`capi_diag.core`, :mod:`capi_diag.engine`, :mod:`capi_diag.diagnostics`.
"""
