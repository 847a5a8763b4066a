"""`transports.Channel`, the one byte channel both ends use: state checks, fd passing, and a
blocked reader woken without racing the close. Over real socketpairs and pipes, in-process."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from ipctest import TIMEOUT

import ipc
from ipc.transports import Channel


def socket_channel(blocking_reads: bool = False) -> tuple[Channel, socket.socket]:
    ours, theirs = socket.socketpair()
    return Channel(ours.fileno(), ours.fileno(), sock=ours, blocking_reads=blocking_reads), theirs


def test_every_public_method_refuses_a_closed_channel() -> None:
    """A stale call says the channel is closed; it never reaches a reused fd number."""
    channel, theirs = socket_channel()
    with theirs:
        channel.close()
        channel.close()  # twice is fine
        channel.interrupt()  # a no-op once closed
        for call in (
            channel.fileno,
            channel.write_fileno,
            channel.recv_bytes,
            lambda: channel.send_bytes(b"x"),
            lambda: channel.send_many([memoryview(b"x")]),
            lambda: channel.send_with_fds(b"x", [0]),
            lambda: channel.wait_readable(0),
            lambda: channel.wait_writable(0),
        ):
            with pytest.raises(ipc.ChannelClosedError):
                call()


def test_writes_never_block_even_when_reads_do() -> None:
    """The child's socket blocks for reads; a write the kernel cannot take returns 0."""
    channel, theirs = socket_channel(blocking_reads=True)
    with theirs:
        total = 0
        while (sent := channel.send_bytes(b"x" * 65536)) > 0:
            total += sent
        assert total > 0 and channel.send_bytes(b"more") == 0
        channel.close()


def test_interrupt_wakes_a_blocked_read_which_then_sees_the_end() -> None:
    channel, theirs = socket_channel(blocking_reads=True)
    got: list[bytes | None] = []
    reader = threading.Thread(target=lambda: got.append(channel.recv_bytes()))
    with theirs:
        reader.start()
        channel.interrupt()
        reader.join(TIMEOUT)
        assert got == [b""]
        channel.close()


def test_interrupt_wakes_a_pipe_reader_waiting_for_data() -> None:
    read_fd, write_fd = os.pipe()
    channel = Channel(read_fd, write_fd, blocking_reads=True)
    woke: list[bool] = []
    reader = threading.Thread(target=lambda: woke.append(channel.wait_readable(None)))
    reader.start()
    channel.interrupt()
    reader.join(TIMEOUT)
    assert woke == [True] and channel.interrupted
    channel.close()


def test_file_descriptors_travel_with_the_bytes_and_none_leaks() -> None:
    sender, receiver_sock = socket_channel()
    receiver = Channel(
        receiver_sock.fileno(), receiver_sock.fileno(), sock=receiver_sock, blocking_reads=True
    )
    r, w = os.pipe()
    try:
        assert sender.send_with_fds(b"frame with an fd\n", [w]) > 0
        assert receiver.recv_bytes() == b"frame with an fd\n"
        (received,), cut = receiver.take_fds()  # now ours to close
        assert not cut and receiver.take_fds() == ([], False)
        assert os.path.sameopenfile(received, w)
        assert not os.get_inheritable(received), "received fds are close-on-exec"
        os.close(received)
        assert sender.send_with_fds(b"another\n", [r]) > 0
        receiver.recv_bytes()
        assert len(receiver.received_fds) == 1
        receiver.close()  # fds nobody took are closed with the channel
        assert not receiver.received_fds
    finally:
        sender.close()
        for fd in (r, w):
            os.close(fd)


def test_more_fds_than_one_read_has_room_for_are_marked_cut() -> None:
    """Node sends one fd per handle; a read with more than its room (16) says so, and the
    kernel closes the ones that did not fit (none leaks here)."""
    sender, receiver_sock = socket_channel()
    receiver = Channel(
        receiver_sock.fileno(), receiver_sock.fileno(), sock=receiver_sock, blocking_reads=True
    )
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        before = len(os.listdir("/proc/self/fd"))
        assert sender.send_with_fds(b"too many\n", [null] * 40) > 0
        receiver.recv_bytes()
        fds, cut = receiver.take_fds()
        assert cut and 0 < len(fds) < 40
        for fd in fds:
            os.close(fd)
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(null)
        sender.close()
        receiver.close()


def test_only_an_af_unix_channel_carries_fds() -> None:
    read_fd, write_fd = os.pipe()
    channel = Channel(read_fd, write_fd)
    with pytest.raises(ipc.InvalidArgumentError, match="AF_UNIX"):
        channel.send_with_fds(b"x", [read_fd])
    channel.close()
