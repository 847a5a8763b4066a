"""Helpers for the scale-out tests' checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def stdout_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in events if e["type"] == "stdout")


def lines(first: int, last: int) -> str:
    """What ``seq FIRST LAST`` prints."""
    return "".join(f"{i}\n" for i in range(first, last + 1))


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])
