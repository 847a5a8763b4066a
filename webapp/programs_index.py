"""A thin adapter over the catalogue of shipped child programs (``webapp.catalog``).

The catalogue belongs to another module; this adapter is the one place that knows its shape,
so the job service, the command policy and the demos ask it "which path and runtime has the
program called X?" and nothing else. Any object with ``list_programs()`` and
``get_program(name)`` works (tests pass their own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Program:
    name: str
    runtime: str  # "python" or "node"
    path: str
    description: str
    info: dict[str, Any]


def _field(entry: Any, name: str, default: Any = None) -> Any:
    if isinstance(entry, dict):
        return entry.get(name, default)
    return getattr(entry, name, default)


def _as_dict(entry: Any) -> dict[str, Any]:
    if isinstance(entry, dict):
        return dict(entry)
    to_dict = getattr(entry, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    if hasattr(entry, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(entry)
    return {k: v for k, v in vars(entry).items() if not k.startswith("_")}


def _program(entry: Any) -> Program:
    path = os.fspath(_field(entry, "path"))
    name = _field(entry, "name") or os.path.basename(path)
    runtime = _field(entry, "runtime") or ("node" if path.endswith((".js", ".mjs")) else "python")
    info = {
        k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in _as_dict(entry).items()
    }
    info.pop("path", None)  # a fork request names a program, never a path
    return Program(name, runtime, path, _field(entry, "description", "") or "", info)


class ProgramIndex:
    """Lookup of shipped programs by name (or by their exact path, for node/python spawns)."""

    def __init__(self, catalog: Any | None) -> None:
        self._catalog = catalog

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from webapp import catalog  # lands with the child programs

            self._catalog = catalog
        return self._catalog

    def list(self) -> list[Program]:
        return [_program(entry) for entry in self.catalog.list_programs()]

    def get(self, name: str) -> Program | None:
        try:
            entry = self.catalog.get_program(name)
        except (KeyError, LookupError, ValueError):
            return None
        return None if entry is None else _program(entry)

    def names(self) -> list[str]:
        return [p.name for p in self.list()]

    def resolve(self, name_or_path: str, runtime: str) -> str | None:
        """The path of the shipped `runtime` program named (or located at) `name_or_path`."""
        program = self.get(name_or_path)
        if program is None:
            real = os.path.realpath(name_or_path)
            program = next((p for p in self.list() if os.path.realpath(p.path) == real), None)
        if program is None or program.runtime != runtime:
            return None
        return program.path
