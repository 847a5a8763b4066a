"""compute.py — the seeds' range sum (000 `/getSum`, 001 `/sum`, 002 `/compute`) in Python.

What it demonstrates: CPU work moved out of the server into a forked child, which reports
progress and the result over the message channel while the server stays responsive (the seeds'
lesson). Start it with `ipc.fork("compute.py")`.

Args: ``[--serve]``. Without it the child answers ONE request and exits 0 (so a job ends with
exit and close, and its timeline is complete); with it, it answers every request until the
parent disconnects, as the seeds' Node children do.

Protocol
--------
Parent → child, one of:

* ``{"min": a, "max": b}``: the sum of ``a <= i < b`` (seed 002's ``fork-compute``; each key
  defaults to 0, as in the seed; an empty range sums to 0). Optional ``"method"``: ``"auto"``
  (default), ``"loop"`` or ``"formula"`` (see below). So seed 001's ``/sum`` is
  ``{"min": 0, "max": 100000}`` → 4999950000.
* anything else, e.g. the seeds' string ``"开始计算"``: seed 000's sum of ``0 <= i <= 10000``
  (inclusive) → 50005000.

Child → parent:

* for a range of at least ``PROGRESS_MIN`` numbers: up to ``MAX_PROGRESS`` (20) messages
  ``{"type": "progress", "done": n, "total": N}`` (numbers summed so far / in the range; the
  last has ``done == total``);
* then the result as a bare JSON number (an exact integer), so the seeds' endpoints can read it
  the way the seeds do: the answer is the first message that is a number;
* for a request it cannot compute: ``{"type": "error", "message": "..."}`` (and exit code 2
  when not serving).

It also logs what it got to stdout, as seed 000's child does.

Method: why a formula for big ranges
------------------------------------
The range is cut into at most 20 chunks (one progress message each). A chunk is summed either
by looping, ``sum(range(lo, hi))`` (real CPU work, ~17 ns a number here: 1e7 numbers take
~0.2 s), or by Gauss's closed form ``(lo + hi - 1) * (hi - lo) // 2`` (constant time, exact,
since Python ints do not overflow). ``"auto"`` loops up to ``LOOP_AUTO_MAX`` numbers, so the
seed-sized ranges do the real work the lesson is about (and N children splitting a range show
a real speed-up), and uses the formula above that: the seed's 0..4e9 would take over a minute
looping in Python (Node's loop takes ~25 s on this box), and the formula answers it at once,
exactly (7999999998000000000, where Node's double gives 7999999996067115000). ``"loop"`` is
refused above ``LOOP_MAX`` numbers so that a request cannot keep a child busy for minutes.
"""

from __future__ import annotations

import os
import sys

from ipc import parent

#: Seed 000's range: 0 <= i <= 10000, i.e. the half-open [0, 10001).
DEFAULT_RANGE = (0, 10001)
#: Ranges with at least this many numbers report progress.
PROGRESS_MIN = 1_000_000
#: At most this many progress messages per request.
MAX_PROGRESS = 20
#: "auto" loops up to this many numbers (about 0.35 s here), and uses the formula above.
LOOP_AUTO_MAX = 20_000_000
#: "loop" refuses more than this many numbers (about 4 s here).
LOOP_MAX = 200_000_000
METHODS = ("auto", "loop", "formula")


class BadRequest(ValueError):
    """A request this child cannot compute; its message goes back to the parent."""


def _bound(request: dict, key: str) -> int:
    value = request.get(key, 0)
    # JSON from Python may carry 4e9 as a float; accept it when it is a whole number.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key!r} must be an integer, got {value!r}")
    return value


def parse(message: object) -> tuple[int, int, str]:
    """The half-open range ``[lo, hi)`` and the method a message asks for."""
    if not isinstance(message, dict):
        return (*DEFAULT_RANGE, "auto")
    lo, hi = _bound(message, "min"), _bound(message, "max")
    method = message.get("method", "auto")
    if method not in METHODS:
        raise BadRequest(f"'method' must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "loop" and hi - lo > LOOP_MAX:
        raise BadRequest(
            f"'loop' over {hi - lo} numbers would take too long; use at most {LOOP_MAX} "
            "numbers, or 'formula' / 'auto'"
        )
    return lo, hi, method


def range_sum(lo: int, hi: int, method: str) -> int:
    """Sum ``lo <= i < hi`` in chunks, sending a progress message after each one."""
    total = max(0, hi - lo)
    if method == "auto":
        method = "loop" if total <= LOOP_AUTO_MAX else "formula"
    chunks = MAX_PROGRESS if total >= PROGRESS_MIN else 1
    result = 0
    for k in range(chunks):
        a = lo + total * k // chunks
        b = lo + total * (k + 1) // chunks
        if method == "loop":
            result += sum(range(a, b))
        else:
            result += (a + b - 1) * (b - a) // 2
        if chunks > 1:
            parent.send({"type": "progress", "done": b - lo, "total": total})
    return result


def handle(message: object) -> bool:
    """Answer one request; False when it could not be computed."""
    print("子进程 ID:", os.getpid(), flush=True)
    print("子进程接收到的信息:", message, flush=True)
    try:
        lo, hi, method = parse(message)
    except BadRequest as exc:
        parent.send({"type": "error", "message": str(exc)})
        return False
    parent.send(range_sum(lo, hi, method))
    return True


def main(argv: list[str]) -> int:
    if argv not in ([], ["--serve"]):
        print("usage: compute.py [--serve]", file=sys.stderr)
        return 2
    serve = argv == ["--serve"]
    for message in parent.messages():
        ok = handle(message)
        if not serve:
            return 0 if ok else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
