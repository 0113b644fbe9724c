"""Ibis and pyarrow, imported on first use.

Importing Ibis costs about 0.18 s and pyarrow 0.1 s: a quarter of what a one-row report's whole
process took with them.
A report whose queries are all in the compiled-SQL cache (:mod:`capi_diag.engine.runner`) builds no
expression and fetches Python rows, so it needs neither: the engine and the analyses name them
through the stand-ins below, which import the real module the first time an attribute is read
(building an expression, compiling, an Arrow table) and from then on are that module's namespace.
``tests/test_engine.py`` checks that a warm report never imports them.

``ibis``, ``ir`` (``ibis.expr.types``) and ``pa`` (``pyarrow``) are used exactly as the modules
themselves: ``from capi_diag.engine.lazy import ibis`` then ``ibis.literal(1)``.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any


class LazyModule(types.ModuleType):
    """A module object that imports ``name`` when one of its attributes is first read."""

    def __getattr__(self, attr: str) -> Any:
        # only called for an attribute not yet in this namespace: the first read imports the module
        # and copies its namespace here, so that later reads are plain attribute lookups
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        real = importlib.import_module(self.__name__)
        if not self.__dict__.get("_loaded"):
            self.__dict__.update({k: v for k, v in vars(real).items() if k != "__getattr__"})
            self.__dict__["_loaded"] = True
        return getattr(real, attr)  # a name the module makes on demand (ibis.duckdb) is asked of it


if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir
    import pyarrow as pa
else:
    ibis = LazyModule("ibis")
    ir = LazyModule("ibis.expr.types")
    pa = LazyModule("pyarrow")



class LazyTable:
    """A table expression built the first time it is used (Django's ``SimpleLazyObject``, for Ibis).

    An analysis computes its shared tables (the validity flags, the paired skews) before its
    queries, and every query's builder reads them; on a warm run no builder is called, so neither
    must the shared tables be built. ``LazyTable(build)`` stands for ``build()``: reading an attribute
    or a column builds it once and reads it from the real table. Pass ``t()`` (the real table) where
    Ibis takes a table as an argument (a join, a union).
    """

    __slots__ = ("_build", "_table")

    def __init__(self, build: Callable[[], ir.Table]) -> None:
        self._build: Callable[[], ir.Table] | None = build
        self._table: ir.Table | None = None

    def __call__(self) -> ir.Table:
        if self._table is None:
            assert self._build is not None
            self._table, self._build = self._build(), None
        return self._table

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self(), name)

    def __getitem__(self, key: Any) -> Any:
        return self()[key]
