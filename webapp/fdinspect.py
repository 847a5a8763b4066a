"""What file descriptors a running child really has, and which of the parent's fds is the
other end of each: seed 002's "IPC set-up" diagram, read from the kernel instead of drawn.

Sources (Linux, same user, no privileges):

* ``/proc/<pid>/fd/<n>`` (what each fd is: ``pipe:[inode]``, ``socket:[inode]``, a path) and
  ``/proc/<pid>/fdinfo/<n>`` (its open flags: read / write end, non-blocking, close-on-exec);
* ``/proc/<pid>/environ``: the environment the child was started with, where
  ``NODE_CHANNEL_FD`` (Node's own variable) or ``IPC_EXPLORER_CHANNEL`` says which fd, or which
  address, is its message channel;
* the other end: a pipe's two ends share one inode, so the parent's fd with the same inode is
  the other end. A socket's two ends have an inode each; the kernel's ``sock_diag`` netlink
  interface (``NETLINK_SOCK_DIAG``, ``UDIAG_SHOW_PEER``: what ``ss -xp`` uses) gives each AF_UNIX
  socket's peer inode and bound name, and ``/proc/net/tcp`` gives each TCP socket's two
  addresses, which are swapped on the other end.

Nothing here changes the child; everything read is a snapshot, so a child that exits while it
is read is reported as gone (`ProcessGone`).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

#: Environment variables that name a child's message channel (ipc/transports.py).
CHANNEL_VARIABLES: Final = ("NODE_CHANNEL_FD", "IPC_EXPLORER_CHANNEL")
SERIALIZATION_VARIABLES: Final = ("NODE_CHANNEL_SERIALIZATION_MODE", "IPC_EXPLORER_SERIALIZATION")
STDIO: Final = {0: "stdin", 1: "stdout", 2: "stderr"}

# sock_diag (linux/sock_diag.h, linux/unix_diag.h, linux/netlink.h)
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_UDIAG_SHOW_NAME = 0x1
_UDIAG_SHOW_PEER = 0x4
_UNIX_DIAG_NAME = 0
_UNIX_DIAG_PEER = 2
_NLMSG_HEADER = struct.Struct("=IHHII")
_UNIX_DIAG_REQ = struct.Struct("=BBHIIIII")
_UNIX_DIAG_MSG = struct.Struct("=BBBBIII")
_RTATTR = struct.Struct("=HH")

_TCP_STATES: Final = {1: "established", 2: "syn-sent", 3: "syn-recv", 6: "time-wait", 10: "listen"}


class ProcessGone(Exception):
    """The process exited (or was never ours to read) while it was being inspected."""


@dataclass
class FdInfo:
    """One open fd of a process."""

    fd: int
    target: str  # what readlink says: "pipe:[123]", "socket:[456]", "/dev/null", ...
    flags: int | None = None
    pos: int | None = None

    @property
    def kind(self) -> str:
        if self.target.startswith("pipe:["):
            return "pipe"
        if self.target.startswith("socket:["):
            return "socket"
        if self.target.startswith("anon_inode:"):
            return "anon_inode"
        if self.target.startswith("/dev/"):
            return "device"
        return "file"

    @property
    def inode(self) -> int | None:
        if self.kind in ("pipe", "socket"):
            return int(self.target[self.target.index("[") + 1 : -1])
        return None

    @property
    def access(self) -> str | None:
        if self.flags is None:
            return None
        return {os.O_RDONLY: "read", os.O_WRONLY: "write", os.O_RDWR: "read/write"}.get(
            self.flags & os.O_ACCMODE
        )

    def flag_names(self) -> list[str]:
        if self.flags is None:
            return []
        names = [{os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY"}.get(self.flags & 3, "O_RDWR")]
        for name in ("O_NONBLOCK", "O_APPEND", "O_CLOEXEC"):
            if self.flags & getattr(os, name):
                names.append(name)
        return names


@dataclass
class UnixSocket:
    inode: int
    kind: str  # stream | dgram | seqpacket
    state: str
    peer: int | None = None
    name: str | None = None


@dataclass
class TcpSocket:
    inode: int
    local: str
    remote: str
    state: str


@dataclass
class SocketTable:
    """Every AF_UNIX and TCP socket of this network namespace, by inode (one snapshot)."""

    unix: dict[int, UnixSocket] = field(default_factory=dict)
    tcp: dict[int, TcpSocket] = field(default_factory=dict)
    peers_known: bool = True  # False: sock_diag was refused, unix peers cannot be matched


# ---- reading /proc -------------------------------------------------------------------------


def read_fds(pid: int) -> list[FdInfo]:
    """The open fds of `pid`, in order. :raises ProcessGone: it is not there (any more)."""
    base = Path(f"/proc/{pid}")
    try:
        names = os.listdir(base / "fd")
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise ProcessGone(f"process {pid} is gone") from exc
    except PermissionError as exc:  # a zombie's fd table cannot be read
        raise ProcessGone(f"process {pid} has exited (its fds are closed)") from exc
    out = []
    for name in sorted(names, key=int):
        try:
            target = os.readlink(base / "fd" / name)
        except OSError:
            continue  # closed between the listing and now
        info = FdInfo(int(name), target)
        try:
            for line in (base / "fdinfo" / name).read_text().splitlines():
                key, _, value = line.partition(":")
                if key == "flags":
                    info.flags = int(value.strip(), 8)
                elif key == "pos":
                    info.pos = int(value.strip())
        except OSError:
            pass
        out.append(info)
    return out


def read_environ(pid: int) -> dict[str, str]:
    """The environment `pid` was started with. :raises ProcessGone: it is not there."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError) as exc:
        raise ProcessGone(f"process {pid} is gone") from exc
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def read_sockets() -> SocketTable:
    table = SocketTable()
    try:
        table.unix = _unix_sockets_by_netlink()
    except OSError:
        table.unix = _unix_sockets_from_proc()
        table.peers_known = False
    table.tcp = _tcp_sockets()
    return table


def _unix_sockets_by_netlink() -> dict[int, UnixSocket]:
    """Every AF_UNIX socket with its peer and name, from one sock_diag dump."""
    request = _UNIX_DIAG_REQ.pack(
        socket.AF_UNIX,
        0,
        0,
        0xFFFFFFFF,
        0,
        _UDIAG_SHOW_NAME | _UDIAG_SHOW_PEER,
        0xFFFFFFFF,
        0xFFFFFFFF,
    )
    header = _NLMSG_HEADER.pack(
        _NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0
    )
    found: dict[int, UnixSocket] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(5.0)
        nl.send(header + request)
        while True:
            data = nl.recv(1 << 16)
            offset = 0
            while offset + _NLMSG_HEADER.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG_HEADER.unpack_from(data, offset)
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)
                    raise OSError(-code, os.strerror(-code))
                _parse_unix_diag(data, offset, length, found)
                offset += (length + 3) & ~3
            if not data:
                raise OSError(errno.EIO, "sock_diag ended without NLMSG_DONE")


def _parse_unix_diag(data: bytes, offset: int, length: int, found: dict[int, UnixSocket]) -> None:
    start = offset + _NLMSG_HEADER.size
    _family, kind, state, _pad, inode, _c1, _c2 = _UNIX_DIAG_MSG.unpack_from(data, start)
    sock = UnixSocket(inode, _SOCK_TYPES.get(kind, str(kind)), _UNIX_STATES.get(state, str(state)))
    attr = start + _UNIX_DIAG_MSG.size
    end = offset + length
    while attr + _RTATTR.size <= end:
        attr_len, attr_type = _RTATTR.unpack_from(data, attr)
        if attr_len < _RTATTR.size:
            break
        payload = data[attr + _RTATTR.size : attr + attr_len]
        if attr_type == _UNIX_DIAG_PEER and len(payload) >= 4:
            sock.peer = struct.unpack_from("=I", payload)[0] or None
        elif attr_type == _UNIX_DIAG_NAME:
            sock.name = _socket_name(payload)
        attr += (attr_len + 3) & ~3
    found[inode] = sock


_SOCK_TYPES: Final = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "dgram", 5: "seqpacket"}
_UNIX_STATES: Final = {1: "connected", 7: "unconnected", 10: "listening"}


def _socket_name(raw: bytes) -> str:
    if raw.startswith(b"\0"):
        return "@" + raw[1:].decode(errors="replace")  # abstract namespace
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _unix_sockets_from_proc() -> dict[int, UnixSocket]:
    """Without sock_diag: /proc/net/unix has each socket's name, but not its peer."""
    found = {}
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) < 7:
            continue
        inode = int(parts[6])
        kind = _SOCK_TYPES.get(int(parts[4], 16), parts[4])
        state = {"01": "unconnected", "03": "connected"}.get(parts[5], parts[5])
        found[inode] = UnixSocket(inode, kind, state, None, parts[7] if len(parts) > 7 else None)
    return found


def _tcp_sockets() -> dict[int, TcpSocket]:
    found = {}
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            inode = int(parts[9])
            if inode:
                found[inode] = TcpSocket(
                    inode,
                    _tcp_address(parts[1], v6),
                    _tcp_address(parts[2], v6),
                    _TCP_STATES.get(int(parts[3], 16), parts[3]),
                )
    return found


def _tcp_address(text: str, v6: bool) -> str:
    """``0100007F:1F90`` (little-endian words, as the kernel prints them) → ``127.0.0.1:8080``."""
    host_hex, port_hex = text.split(":")
    raw = bytes.fromhex(host_hex)
    # Each 32-bit word is in host order (little-endian here).
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    host = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)
    return f"[{host}]:{int(port_hex, 16)}" if v6 else f"{host}:{int(port_hex, 16)}"


# ---- putting it together --------------------------------------------------------------------


def channel_fds(env: dict[str, str], fds: list[FdInfo], sockets: SocketTable) -> list[int]:
    """The child's fds that are its message channel, from the variable that names it."""
    value = env.get("NODE_CHANNEL_FD")
    if value is not None and value.isdigit():
        return [int(value)]
    address = env.get("IPC_EXPLORER_CHANNEL", "")
    if address.startswith("pipe:"):
        return [int(n) for n in address[len("pipe:") :].split(",") if n.isdigit()]
    if address.startswith("unix:"):
        path = address[len("unix:") :]
        for info in fds:
            sock = sockets.unix.get(info.inode or -1)
            peer = sockets.unix.get(sock.peer) if sock and sock.peer else None
            if peer is not None and peer.name == path:
                return [info.fd]
    if address.startswith("tcp:"):
        host_port = address[len("tcp:") :]
        for info in fds:
            tcp = sockets.tcp.get(info.inode or -1)
            if tcp is not None and tcp.remote == host_port:
                return [info.fd]
    return []


def _describe_socket(inode: int, sockets: SocketTable) -> tuple[str, str]:
    """(transport word, detail) for a socket inode."""
    unix = sockets.unix.get(inode)
    if unix is not None:
        peer = sockets.unix.get(unix.peer) if unix.peer else None
        where = f", bound to {unix.name}" if unix.name else ""
        if peer is not None and peer.name:  # an accepted connection carries the listener's name
            where += f", peer bound to {peer.name}"
        return "unix", f"AF_UNIX {unix.kind}, {unix.state}{where}"
    tcp = sockets.tcp.get(inode)
    if tcp is not None:
        return "tcp", f"TCP {tcp.local} → {tcp.remote}, {tcp.state}"
    return "socket", "socket (not AF_UNIX or TCP)"


def _peer_inodes(info: FdInfo, sockets: SocketTable) -> tuple[list[int], str]:
    """Inodes that are the other end of `info`, and how that is known."""
    inode = info.inode
    if inode is None:
        return [], ""
    if info.kind == "pipe":
        return [inode], f"same pipe inode {inode}"
    unix = sockets.unix.get(inode)
    if unix is not None and unix.peer:
        return [unix.peer], f"sock_diag: peer of socket {inode} is socket {unix.peer}"
    tcp = sockets.tcp.get(inode)
    if tcp is not None:
        twins = [
            other.inode
            for other in sockets.tcp.values()
            if other.local == tcp.remote and other.remote == tcp.local
        ]
        return twins, f"/proc/net/tcp: {tcp.local} ↔ {tcp.remote}"
    return [], ""


def _holders(fds: list[FdInfo]) -> dict[int, list[FdInfo]]:
    by_inode: dict[int, list[FdInfo]] = {}
    for info in fds:
        if info.inode is not None:
            by_inode.setdefault(info.inode, []).append(info)
    return by_inode


def inspect(
    pid: int,
    parent_pid: int,
    *,
    transport: str | None = None,
    extra_stdio: tuple[int, ...] = (),
) -> dict[str, Any]:
    """A snapshot of `pid`'s fds, each matched to the fd(s) of `parent_pid` on its other end.

    :param transport: the job's transport, named in the answer.
    :param extra_stdio: the child's fds that are extra stdio pipes (a spawn's ``stdio[3:]``).
    :raises ProcessGone: `pid` is not running (any more).
    """
    env = read_environ(pid)
    fds = read_fds(pid)
    sockets = read_sockets()
    parent_fds = read_fds(parent_pid)
    in_parent = _holders(parent_fds)
    in_child = _holders(fds)
    channel = channel_fds(env, fds, sockets)
    rows = []
    for info in fds:
        if info.fd in STDIO:
            role = STDIO[info.fd]
        elif info.fd in channel:
            role = "ipc channel"
        elif info.fd in extra_stdio:
            role = f"extra stdio (fd{info.fd})"
        else:
            role = "other"
        peers, how = _peer_inodes(info, sockets)
        parent_ends = [p for inode in peers for p in in_parent.get(inode, [])]
        child_ends = [c for inode in peers for c in in_child.get(inode, []) if c.fd != info.fd]
        if info.kind == "socket" and info.inode is not None:
            word, detail = _describe_socket(info.inode, sockets)
        else:
            word, detail = info.kind, ""
        rows.append(
            {
                "fd": info.fd,
                "role": role,
                "target": info.target,
                "kind": info.kind,
                "transport": word,
                "detail": detail,
                "inode": info.inode,
                "access": info.access,
                "flags": info.flag_names(),
                "pos": info.pos,
                "peer": _peer(parent_pid, parent_ends, child_ends, how, info),
            }
        )
    env_name = next((v for v in CHANNEL_VARIABLES if v in env), None)
    return {
        "pid": pid,
        "parent_pid": parent_pid,
        "transport": transport,
        "channel": {
            "variable": env_name,
            "value": env.get(env_name) if env_name else None,
            "fds": channel,
            "serialization": next(
                (env[v] for v in SERIALIZATION_VARIABLES if v in env), "json" if channel else None
            ),
        },
        "sock_diag": sockets.peers_known,
        "fds": rows,
    }


def _peer(
    parent_pid: int, parent_ends: list[FdInfo], child_ends: list[FdInfo], how: str, info: FdInfo
) -> dict[str, Any] | None:
    """Where the other end of `info` is: in the parent (the diagram's arrow), in the child
    itself (e.g. Node's own signal pipe), or nowhere we can see."""
    if parent_ends:
        return {
            "where": "parent",
            "pid": parent_pid,
            "fds": [
                {"fd": p.fd, "target": p.target, "access": p.access, "flags": p.flag_names()}
                for p in parent_ends
            ],
            "how": how,
        }
    if child_ends:
        return {"where": "child", "fds": [{"fd": c.fd, "target": c.target} for c in child_ends]}
    if how:
        return {"where": "elsewhere", "how": how}
    return None
