"""A child's states and the changes allowed between them (as Supervisor's `states.py`).

::

    starting ──spawn──▶ running ──exit──▶ exited | signaled
        └──error (it could not start)──▶ failed

Every change goes through `ChildProcess._change_state`, which emits the event of the change,
so a listener always finds the state that its event announced. `close` is not a state: it
follows `exit` (or `failed`) once every stream has ended, and `ChildProcess.closed` tells it.
The names are the web app's and the browser's too: one vocabulary from the library to the page.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class State(StrEnum):
    """Where a child is in its life. A `str`: compares and serialises as its value."""

    STARTING = "starting"  # created; not yet known to the reactor
    RUNNING = "running"  # started (`spawn` emitted)
    EXITED = "exited"  # ended with an exit code (`exit(code, None)`)
    SIGNALED = "signaled"  # ended by a signal (`exit(None, signal)`)
    FAILED = "failed"  # could not be started (`error(SpawnError)`); never ran


#: Each state and the states it may change to, with the event that announces the change.
TRANSITIONS: Final[dict[State, dict[State, str]]] = {
    State.STARTING: {State.RUNNING: "spawn", State.FAILED: "error"},
    State.RUNNING: {State.EXITED: "exit", State.SIGNALED: "exit"},
    State.EXITED: {},
    State.SIGNALED: {},
    State.FAILED: {},
}

#: States after which the child will not change again.
FINAL_STATES: Final = frozenset(state for state, nexts in TRANSITIONS.items() if not nexts)
