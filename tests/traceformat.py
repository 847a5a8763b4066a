"""A checker for the Chrome Trace Event Format (the "Trace Event Format" document, JSON Object
Format), written from the spec, for the trace export's tests.

`problems(doc)` lists every rule a document breaks (empty: valid). Rules checked:

* the object form: ``traceEvents`` is a list; ``displayTimeUnit``, if present, is "ms" or "ns";
* every event has a string ``name`` and a known one-letter ``ph``; an integer ``pid``;
  ``args``, if present, is an object;
* every event but metadata has a number ``ts`` >= 0 (microseconds); thread-level events
  (``X``, ``B``/``E``, thread-scope ``i``, flow ``s``/``t``/``f``) an integer ``tid``;
* ``X``: a number ``dur`` >= 0;
* ``i`` / ``I``: ``s`` (scope), if present, one of "g", "p", "t";
* ``C``: ``args`` an object of numbers (one series each);
* ``M``: ``name`` one of the metadata names, ``args.name`` a string for the ``*_name`` ones and
  ``args.sort_index`` an integer for the ``*_sort_index`` ones;
* flows (``s``, ``t``, ``f``): an ``id``; bound by (``cat``, ``name``, ``id``) as the viewers
  do; each flow has exactly one start and one end, the end no earlier than the start; ``bp``,
  if present, is "e"; and each flow event lies inside a complete (``X``) slice on its own
  thread, which is what it binds to (``bp: "e"``: the enclosing slice).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

PHASES = set("BEXiICbneNsOtfDPMVvRc") | {"(", ")"}
METADATA = {
    "process_name": "name",
    "process_labels": "labels",
    "process_sort_index": "sort_index",
    "thread_name": "name",
    "thread_sort_index": "sort_index",
}
THREAD_LEVEL = {"X", "B", "E", "s", "t", "f"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problems(doc: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        return ["the document must be an object with a traceEvents list"]
    if doc.get("displayTimeUnit", "ms") not in ("ms", "ns"):
        out.append(f"displayTimeUnit must be 'ms' or 'ns', not {doc['displayTimeUnit']!r}")
    slices: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    flows: dict[tuple[Any, Any, Any], dict[str, list[dict]]] = defaultdict(
        lambda: {"s": [], "t": [], "f": []}
    )
    for n, e in enumerate(doc["traceEvents"]):
        where = f"event {n} ({e.get('ph')!r} {e.get('name')!r})" if isinstance(e, dict) else n
        if not isinstance(e, dict):
            out.append(f"{where}: not an object")
            continue
        ph = e.get("ph")
        if ph not in PHASES:
            out.append(f"{where}: unknown phase")
            continue
        if not isinstance(e.get("name"), str):
            out.append(f"{where}: name must be a string")
        if not isinstance(e.get("pid"), int) or isinstance(e.get("pid"), bool):
            out.append(f"{where}: pid must be an integer")
        if "args" in e and not isinstance(e["args"], dict):
            out.append(f"{where}: args must be an object")
        if ph == "M":
            key = METADATA.get(e.get("name"))
            if key is None:
                out.append(f"{where}: unknown metadata name")
            elif key == "name" and not isinstance(e.get("args", {}).get("name"), str):
                out.append(f"{where}: args.name must be a string")
            elif key == "sort_index" and not isinstance(e.get("args", {}).get("sort_index"), int):
                out.append(f"{where}: args.sort_index must be an integer")
            continue
        if not _number(e.get("ts")) or e["ts"] < 0:
            out.append(f"{where}: ts must be a number >= 0 (microseconds)")
            continue
        scope = e.get("s", "t")
        if (ph in THREAD_LEVEL or (ph in "iI" and scope == "t")) and (
            not isinstance(e.get("tid"), int) or isinstance(e.get("tid"), bool)
        ):
            out.append(f"{where}: tid must be an integer")
        if ph == "X":
            if not _number(e.get("dur")) or e["dur"] < 0:
                out.append(f"{where}: dur must be a number >= 0")
            else:
                slices[(e["pid"], e.get("tid"))].append((e["ts"], e["ts"] + e["dur"]))
        elif ph in "iI" and scope not in ("g", "p", "t"):
            out.append(f"{where}: instant scope s must be 'g', 'p' or 't'")
        elif ph == "C":
            args = e.get("args")
            if not isinstance(args, dict) or not args or not all(map(_number, args.values())):
                out.append(f"{where}: a counter's args must be an object of numbers")
        elif ph in "stf":
            if "id" not in e:
                out.append(f"{where}: a flow event needs an id")
            if "bp" in e and e["bp"] != "e":
                out.append(f"{where}: bp must be 'e'")
            flows[(e.get("cat"), e.get("name"), e.get("id"))][ph].append(e)
    for key, parts in flows.items():
        if len(parts["s"]) != 1 or len(parts["f"]) != 1:
            out.append(f"flow {key}: {len(parts['s'])} start(s) and {len(parts['f'])} end(s)")
            continue
        start, end = parts["s"][0], parts["f"][0]
        if end["ts"] < start["ts"]:
            out.append(f"flow {key}: ends at {end['ts']} before it starts at {start['ts']}")
        for e in (start, *parts["t"], end):
            spans = slices.get((e["pid"], e.get("tid")), [])
            if not any(a <= e["ts"] <= b for a, b in spans):
                out.append(f"flow {key}: its {e['ph']!r} event has no enclosing slice to bind to")
    return out
