"""The core: what every other layer shares, importing nothing of the project.

Errors and exit codes (:mod:`.errors`), configuration (:mod:`.config`), the event-log contract
(:mod:`.schema`), the one set of patterns and key lists (:mod:`.patterns`), Meta's normalization and
hashing rules in plain Python (:mod:`.normalize`), one number format (:mod:`.fmt`), the analyst's words
(:mod:`.labels`) and where shipped files are (:mod:`.resources`).

May import: the standard library and third-party packages only; within the project, other modules of
``core`` (never a higher layer).
"""
