"""Each allowlisted command takes only the arguments it declares (security.py's ARGUMENTS):
`date` reads the clock but may not set it, `hostname` prints the name but may not change it.
Anything else is a 403 that names the refused argument, before anything runs.
"""

from __future__ import annotations

import pytest
from server import ThreadServer
from webtest import wait_closed

#: (kind, command, args, the refused argument the 403 must name). Never run against a server
#: without the argument rules: as root, several of these change the machine.
REFUSED = [
    ("spawn", "date", ["-s", "2001-01-01"], "'-s'"),
    ("spawn", "date", ["--set=2001-01-01"], "'--set=2001-01-01'"),
    ("spawn", "date", ["010100002001"], "'010100002001'"),  # date MMDDhhmmCCYY sets the clock
    ("spawn", "date", ["-f", "/etc/passwd"], "'-f'"),  # prints each line it cannot parse
    ("exec_file", "date", ["--file=/etc/passwd"], "'--file=/etc/passwd'"),
    ("spawn", "date", ["-r", "/etc/passwd"], "'-r'"),
    ("exec_file", "date", ["-us", "2001-01-01"], "'-s'"),
    ("spawn", "hostname", ["attacker"], "'attacker'"),
    ("spawn", "hostname", ["-F", "/etc/hostname"], "'-F'"),
    ("spawn", "hostname", ["--file=/etc/hostname"], "'--file=/etc/hostname'"),
    ("spawn", "hostname", ["-b", "x"], "'-b'"),
    ("spawn", "hostname", ["-s", "x"], "'x'"),
    ("spawn", "uname", ["--bogus"], "'--bogus'"),
    ("spawn", "whoami", ["root"], "'root'"),
    ("spawn", "wc", ["--files0-from=/etc/passwd"], "'--files0-from=/etc/passwd'"),
    ("spawn", "ls", ["--zzz"], "'--zzz'"),
    ("spawn", "tail", ["-n"], "'-n' needs a value"),
]


def body_of(kind: str, command: str, args: list[str]) -> dict:
    if kind == "exec":
        return {"kind": kind, "command": " ".join([command, *args])}
    return {"kind": kind, "command": command, "args": args}


@pytest.mark.parametrize(
    ("kind", "command", "args", "named"),
    REFUSED,
    ids=[f"{r[1]} {' '.join(r[2])}" for r in REFUSED],
)
@pytest.mark.parametrize("as_shell_line", [False, True], ids=["argv", "exec"])
def test_arguments_a_command_does_not_declare_are_403_naming_them(
    srv: ThreadServer, kind: str, command: str, args: list[str], named: str, as_shell_line: bool
) -> None:
    body = body_of("exec" if as_shell_line else kind, command, args)
    before = len(srv.json("GET", "/api/jobs")[1]["jobs"])
    status, answer = srv.json("POST", "/api/jobs", body)
    assert status == 403, answer
    assert named in answer["error"], answer
    assert len(srv.json("GET", "/api/jobs")[1]["jobs"]) == before  # nothing started


ALLOWED = [
    ("date", ["+%Y"], None),
    ("date", ["-u", "+%s"], None),
    ("date", ["--utc"], None),
    ("date", ["-d", "2001-01-01", "+%Y"], "2001\n"),
    ("date", ["--date=2001-01-01", "-I"], "2001-01-01\n"),
    ("hostname", [], None),
    ("hostname", ["-s"], None),
    ("uname", ["-a"], None),
    ("ls", ["-lh", "/"], None),
    ("ls", ["-la", "--color=never", "/"], None),
    ("echo", ["-n", "anything", "--set", "-s"], "anything --set -s"),
    ("printf", ["%s-%s", "a", "b"], "a-b"),
    ("seq", ["3"], "1\n2\n3\n"),
    ("head", ["-n", "1", "/etc/hostname"], None),
    ("head", ["-c3", "--", "/etc/hostname"], None),
    ("tail", ["-n", "1", "/etc/hostname"], None),
    ("wc", ["-l", "/etc/hostname"], None),
    ("cat", ["-n", "/etc/hostname"], None),
    ("sleep", ["0"], ""),
    ("true", [], ""),
    ("whoami", [], None),
    ("pwd", ["-P"], None),
]


@pytest.mark.parametrize(
    ("command", "args", "stdout"), ALLOWED, ids=[f"{a[0]} {' '.join(a[1])}" for a in ALLOWED]
)
def test_declared_arguments_run(
    srv: ThreadServer, command: str, args: list[str], stdout: str | None
) -> None:
    status, job = srv.json(
        "POST", "/api/jobs", {"kind": "exec_file", "command": command, "args": args}
    )
    assert status == 201, job
    done = wait_closed(srv, job["id"])
    assert done["exit_code"] == 0, done
    if stdout is not None:
        assert done["result"]["stdout"] == stdout


@pytest.mark.parametrize("kind", ["spawn", "exec_file"])
def test_arguments_in_the_command_field_say_to_use_args(srv: ThreadServer, kind: str) -> None:
    status, answer = srv.json("POST", "/api/jobs", {"kind": kind, "command": "ls -lh"})
    assert status == 400, answer
    assert "put arguments in 'args'" in answer["error"], answer
    assert '"command": "ls", "args": ["-lh"]' in answer["error"], answer


def test_any_command_allowed_lifts_the_argument_rules_too() -> None:
    with ThreadServer({"ALLOW_ANY_COMMAND": True}) as srv:
        status, job = srv.json(
            "POST", "/api/jobs", {"kind": "exec_file", "command": "date", "args": ["-r", "/"]}
        )
        assert status == 201, job
        assert wait_closed(srv, job["id"])["exit_code"] == 0
