"""The error hierarchy: what callers catch, and what `to_dict()` sends to a browser."""

from __future__ import annotations

import json

import pytest

import ipc

NAMES = [
    "IPCError",
    "ChannelClosedError",
    "BrokenChannelError",
    "ProtocolError",
    "MessageTooLargeError",
    "SerializationError",
    "AuthenticationError",
    "HandleError",
    "SpawnError",
    "ExecError",
    "ProcessTimeoutError",
    "InvalidArgumentError",
]


@pytest.mark.parametrize("name", NAMES)
def test_every_error_is_exported_and_an_ipc_error(name: str) -> None:
    cls = getattr(ipc, name)
    assert issubclass(cls, ipc.IPCError)
    assert issubclass(cls, Exception)


def test_the_documented_extra_bases() -> None:
    """Callers can catch them with the stdlib type they already know."""
    assert issubclass(ipc.MessageTooLargeError, ipc.ProtocolError)
    assert issubclass(ipc.SerializationError, TypeError)
    assert issubclass(ipc.ProcessTimeoutError, TimeoutError)
    assert issubclass(ipc.InvalidArgumentError, ValueError)
    # "we closed it" and "the peer went away" stay distinguishable
    assert not issubclass(ipc.ChannelClosedError, ipc.BrokenChannelError)
    assert not issubclass(ipc.BrokenChannelError, ipc.ChannelClosedError)


def test_protocol_error_to_dict_keeps_the_first_bytes() -> None:
    err = ipc.ProtocolError("frame is not valid JSON", b"garbage\xff" * 100)
    assert err.data.startswith(b"garbage")
    assert len(err.data) < 800
    d = err.to_dict()
    json.dumps(d)
    assert d["type"] == "ProtocolError"
    assert "not valid JSON" in d["message"]
    assert d["data"].startswith("garbage")


def test_message_too_large_to_dict() -> None:
    err = ipc.MessageTooLargeError("too big", b"xxxx", size=2000, limit=1000)
    d = err.to_dict()
    json.dumps(d)
    assert (d["type"], d["size"], d["limit"]) == ("MessageTooLargeError", 2000, 1000)


def test_spawn_error_code() -> None:
    err = ipc.SpawnError("no such program: nope", code="ENOENT", path="nope")
    assert err.code == "ENOENT"
    d = err.to_dict()
    json.dumps(d)
    assert d["code"] == "ENOENT"
    assert d["type"] == "SpawnError"


def test_exec_error_to_dict_with_bytes_output() -> None:
    err = ipc.ExecError(
        "Command failed: false",
        command="false",
        stdout=b"out\xff",
        stderr="err",
        exit_code=1,
    )
    assert err.code == 1, "as Node: err.code is the exit code for a non-zero exit"
    d = err.to_dict()
    json.dumps(d)
    assert d["stdout"].startswith("out")
    assert d["stderr"] == "err"
    assert d["exit_code"] == 1
    assert d["signal"] is None
    assert d["killed"] is False
    assert d["timed_out"] is False
    assert d["max_buffer_exceeded"] is False


@pytest.mark.parametrize("name", NAMES)
def test_to_dict_is_json_with_type_and_message(name: str) -> None:
    cls = getattr(ipc, name)
    if name == "ExecError":
        err = cls("boom", command="x", stdout="", stderr="")
    elif name == "MessageTooLargeError":
        err = cls("boom", b"", size=1, limit=0)
    else:
        err = cls("boom")
    d = err.to_dict()
    assert json.loads(json.dumps(d))["type"] == name
    assert d["message"] == "boom"
