"""Ending the process from one of ipc's own threads, as Node ends it.

In Node a listener runs on the one thread there is: ``process.exit(n)`` in it ends the process
with status n, and an uncaught exception prints its stack and ends it with status 1. In Python
a listener runs on one of ipc's threads (the parent's reactor, the child's reader or writer),
and an exception that leaves a thread is lost with the thread: `sys.exit(3)` would end that
thread only, silently, and every event it was to deliver after that would never come (the
parent's `wait()` on any other child would hang, and the program would exit 0).

`exit_process(exc)` is what those threads call instead when a listener or callback let a
`SystemExit` (or any other exception they do not otherwise handle) escape: status from
`SystemExit.code` as the interpreter computes it (None is 0, a non-int is printed and is 1),
any other exception's traceback on stderr and status 1. Before `os._exit` it runs the owner's
`before_exit` (the child writes its queued messages), then the `atexit` handlers (the parent's
`ipc.shutdown()`, the caller's own), and flushes stdout and stderr, as an ordinary exit would.

Meanwhile the main thread runs on, and may come to its own end first (the `atexit` handlers
take a while: `ipc.shutdown()` waits for children, whose end may be what the main thread
waits for). The interpreter's own exit would then run the handlers a second time and exit
with *its* status. So the first thing `exit_process` does is start a non-daemon thread that
never ends: the interpreter's exit waits for non-daemon threads before anything else, and
`os._exit` here ends the process while it waits.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn


def exit_status(exc: BaseException) -> int:
    """The status the interpreter would exit with for `exc` left uncaught in its main thread
    (printing what it would print); KeyboardInterrupt and the rest count as an error (1)."""
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    sys.excepthook(type(exc), exc, exc.__traceback__)
    return 1


def _hold_the_process() -> None:
    """Keep the interpreter's own exit waiting until `os._exit` (see the module docstring)."""
    try:
        threading.Thread(target=threading.Event().wait, name="ipc-exiting", daemon=False).start()
    except RuntimeError:  # the interpreter is shutting down already: nothing to hold
        pass


def exit_process(exc: BaseException, before_exit: Callable[[], None] | None = None) -> NoReturn:
    """End this process for `exc` (see the module docstring); never returns."""
    status = 1
    try:
        _hold_the_process()
        status = exit_status(exc)
        if before_exit is not None:
            try:
                before_exit()
            except BaseException:  # nothing may stop the exit itself
                pass
        atexit._run_exitfuncs()  # what Python runs at exit (queued messages, ipc.shutdown, ...)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(status)
