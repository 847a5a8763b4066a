"""Signal names and numbers, for every signal the system has — not only those Python names.

A child's exit status is kept as the integer the kernel gave (`ChildProcess.returncode`, as
CPython's `popen_fork.py` keeps it); a name is derived from it for display only. Python's
`signal.Signals` knows the real-time signals by their bounds alone (`SIGRTMIN`, `SIGRTMAX`), so
the ones between are named as glibc and `kill -l` name them: ``SIGRTMIN+1``, ``SIGRTMAX-2``.
Any other number without a name is ``SIG<n>``. Both forms are accepted back by `signal_number`.
"""

from __future__ import annotations

import re
import signal as _signal

from .errors import InvalidArgumentError

_VALID = frozenset(int(s) for s in _signal.valid_signals())
_RTMIN = int(getattr(_signal, "SIGRTMIN", 0)) or None
_RTMAX = int(getattr(_signal, "SIGRTMAX", 0)) or None
_RT_NAME = re.compile(r"SIGRT(MIN|MAX)([+-]\d+)?")
_NUMBER_NAME = re.compile(r"SIG(\d+)")


def signal_name(signum: int) -> str:
    """15 → ``"SIGTERM"``; 35 → ``"SIGRTMIN+1"``; a number with no name at all → ``"SIG<n>"``."""
    try:
        return _signal.Signals(signum).name
    except ValueError:
        pass
    if _RTMIN is not None and _RTMAX is not None and _RTMIN < signum < _RTMAX:
        # glibc's (and `kill -l`'s) convention: the lower half counts up from SIGRTMIN
        if signum - _RTMIN <= (_RTMAX - _RTMIN) // 2:
            return f"SIGRTMIN+{signum - _RTMIN}"
        return f"SIGRTMAX-{_RTMAX - signum}"
    return f"SIG{signum}"


def signal_number(sig: str | int) -> int:
    """``"SIGTERM"``, ``"TERM"``, ``15``, `signal.SIGTERM`, ``"SIGRTMIN+1"`` or ``"SIG35"`` → the
    number.

    :raises InvalidArgumentError: not a signal this system has.
    """
    if isinstance(sig, bool):
        raise InvalidArgumentError(f"signal must be a name or a number, not {sig!r}")
    if isinstance(sig, int):
        if int(sig) in _VALID:
            return int(sig)
        raise InvalidArgumentError(f"unknown signal number {sig}")
    if not isinstance(sig, str):
        raise InvalidArgumentError(f"signal must be a name or a number, not {type(sig).__name__}")
    name = sig.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    value = getattr(_signal.Signals, name, None)
    if value is not None and not name.startswith("SIG_"):
        return int(value)
    number = _parse_numbered(name)
    if number is not None and number in _VALID:
        return number
    raise InvalidArgumentError(
        f"unknown signal {sig!r}; use a name like 'SIGTERM', 'SIGINT', 'SIGKILL', "
        "'SIGRTMIN+1' or a number"
    )


def _parse_numbered(name: str) -> int | None:
    """``SIGRTMIN+n`` / ``SIGRTMAX-n`` / ``SIG<n>`` → the number, or None."""
    match = _RT_NAME.fullmatch(name)
    if match is not None and _RTMIN is not None and _RTMAX is not None:
        base = _RTMIN if match[1] == "MIN" else _RTMAX
        number = base + int(match[2] or 0)
        return number if _RTMIN <= number <= _RTMAX else None
    match = _NUMBER_NAME.fullmatch(name)
    return int(match[1]) if match is not None else None
