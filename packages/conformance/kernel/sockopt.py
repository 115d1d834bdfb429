#!/usr/bin/env python3
"""Read a TCP socket's options as the Linux kernel has them, from another process.

Usage:
  sockopt.py --pid PID --local-port L --remote-port R   # a connected socket of PID
  sockopt.py --pid PID --local-port L --listen          # a listening socket of PID
  sockopt.py --self-test [--pid PID]                    # can we borrow PID's fds? (default: parent)

The socket is found by its inode: the TCP entry with those ports in /proc/PID/net/tcp and
/proc/PID/net/tcp6 (the target's own network namespace) must be one of the sockets in
/proc/PID/fd. It is then duplicated into this process with pidfd_open + pidfd_getfd, read
with getsockopt, and closed again (closing a duplicate neither shuts down nor changes the
target's socket). One JSON line goes to stdout:

  {"nodelay": bool, "keepalive": bool, "rcvbuf": int, "sndbuf": int, "reuseaddr": bool,
   "family": "ipv4"|"ipv6", "state": str, "inode": int}

In --listen mode "backlog" (the kernel's sk_max_ack_backlog) and "acceptQueue" (connections
completed but not yet accepted) are added when sock_diag answers for that inode.

Exit status: 0 on success, 1 if the socket is not found or is ambiguous, 2 on bad usage,
3 if the kernel refuses (no pidfd_getfd, no permission). The reason goes to stderr.
Python 3.11, stdlib only, Linux >= 5.6.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import platform
import socket
import struct
import sys

# pidfd_getfd is 438 in the unified syscall table (x86_64, aarch64, arm, riscv, ...);
# only alpha (548) differs, and mips/ia64 offset their tables.
_SYS_PIDFD_GETFD = {"alpha": 548}.get(platform.machine(), 438)

_TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
_TCP_LISTEN = 10


class Failure(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def pidfd_getfd(pid: int, target_fd: int) -> int:
    """A new fd (O_CLOEXEC) in this process for fd `target_fd` of process `pid`."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise Failure(f"process {pid} does not exist", 1) from None
    except OSError as e:
        raise Failure(f"pidfd_open({pid}) failed: {os.strerror(e.errno or 0)}", 3) from None
    try:
        syscall = _libc().syscall
        syscall.restype = ctypes.c_long
        fd = syscall(
            ctypes.c_long(_SYS_PIDFD_GETFD), ctypes.c_int(pidfd), ctypes.c_int(target_fd), ctypes.c_uint(0)
        )
        if fd < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSYS:
                raise Failure("pidfd_getfd is not available (needs Linux >= 5.6, or blocked by seccomp)", 3)
            if err == errno.EPERM:
                raise Failure(
                    f"pidfd_getfd on process {pid} was refused (EPERM): needs ptrace access to it "
                    "(same user and kernel.yama.ptrace_scope=0, or CAP_SYS_PTRACE / root)",
                    3,
                )
            if err == errno.EBADF:
                raise Failure(f"process {pid} has no fd {target_fd} (any more)", 1)
            if err == errno.ESRCH:
                raise Failure(f"process {pid} has exited", 1)
            raise Failure(f"pidfd_getfd({pid}, {target_fd}) failed: {os.strerror(err)}", 3)
        return int(fd)
    finally:
        os.close(pidfd)


def socket_fds(pid: int) -> dict[int, int]:
    """inode -> fd number, for every socket fd of process `pid`."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        raise Failure(f"process {pid} does not exist", 1) from None
    except PermissionError:
        raise Failure(f"cannot list {fd_dir}: permission denied (needs ptrace access to process {pid})", 3) from None
    result: dict[int, int] = {}
    for name in names:
        try:
            link = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:[") and link.endswith("]"):
            result.setdefault(int(link[8:-1]), int(name))
    return result


class TcpEntry:
    def __init__(self, family: str, local: str, local_port: int, remote: str, remote_port: int,
                 state: int, inode: int) -> None:
        self.family = family
        self.local = local
        self.local_port = local_port
        self.remote = remote
        self.remote_port = remote_port
        self.state = state
        self.inode = inode

    def describe(self) -> str:
        state = _TCP_STATES.get(self.state, str(self.state))
        return (
            f"{self.family} [{self.local}]:{self.local_port} -> [{self.remote}]:{self.remote_port} {state}"
            f" inode {self.inode}"
        )


def _hex_address(text: str) -> tuple[str, int]:
    """'0100007F:1F90' -> ('127.0.0.1', 8080); the address is in 32-bit words of host byte order."""
    hex_addr, hex_port = text.split(":")
    raw = bytes.fromhex(hex_addr)
    words = b"".join(struct.pack("=I", int.from_bytes(raw[i : i + 4], "big")) for i in range(0, len(raw), 4))
    try:
        addr = socket.inet_ntop(socket.AF_INET if len(words) == 4 else socket.AF_INET6, words)
    except (OSError, ValueError):
        addr = hex_addr
    return addr, int(hex_port, 16)


def tcp_table(pid: int) -> list[TcpEntry]:
    """Every TCP socket of the target's network namespace (falls back to our own)."""
    entries: list[TcpEntry] = []
    read_any = False
    for family, name in (("ipv4", "tcp"), ("ipv6", "tcp6")):
        text = None
        for path in (f"/proc/{pid}/net/{name}", f"/proc/net/{name}"):
            try:
                with open(path, encoding="ascii") as f:
                    text = f.read()
                break
            except OSError:
                continue
        if text is None:
            continue  # e.g. no IPv6 in this kernel
        read_any = True
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10:
                continue
            local, lport = _hex_address(fields[1])
            remote, rport = _hex_address(fields[2])
            entries.append(TcpEntry(family, local, lport, remote, rport, int(fields[3], 16), int(fields[9])))
    if not read_any:
        raise Failure("cannot read /proc/net/tcp or /proc/net/tcp6", 3)
    return entries


def find_socket(pid: int, local_port: int, remote_port: int | None) -> tuple[TcpEntry, int]:
    """The (entry, fd) of the socket of PID with those ports; remote_port None means LISTEN."""
    if not os.path.isdir(f"/proc/{pid}"):
        raise Failure(f"process {pid} does not exist", 1)
    if remote_port is None:
        wanted = [e for e in tcp_table(pid) if e.state == _TCP_LISTEN and e.local_port == local_port]
        what = f"listening TCP socket on port {local_port}"
    else:
        wanted = [
            e
            for e in tcp_table(pid)
            if e.state != _TCP_LISTEN and e.local_port == local_port and e.remote_port == remote_port
        ]
        what = f"TCP connection with local port {local_port} and remote port {remote_port}"
    wanted = [e for e in wanted if e.inode != 0]  # TIME_WAIT and the like have no socket any more
    if not wanted:
        raise Failure(f"no {what} in the network namespace of process {pid}", 1)
    fds = socket_fds(pid)
    # /proc/net/tcp is made a page at a time: while connections come and go, one socket can be
    # listed twice. An inode is one socket, so duplicates are dropped.
    owned = list({e.inode: e for e in wanted if e.inode in fds}.values())
    if not owned:
        others = "; ".join(e.describe() for e in wanted)
        raise Failure(f"process {pid} holds no {what} (the kernel has: {others})", 1)
    if len(owned) > 1:
        established = [e for e in owned if e.state == 1]
        if len(established) == 1:
            owned = established
        else:
            listing = "; ".join(e.describe() for e in owned)
            raise Failure(f"process {pid} holds several sockets matching {what}: {listing}", 1)
    entry = owned[0]
    return entry, fds[entry.inode]


# --- sock_diag: the listen backlog (sk_max_ack_backlog) that getsockopt cannot tell -------------

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3


def listen_queues(inode: int) -> tuple[int, int] | None:
    """(backlog, acceptQueue) of the listening socket `inode` in our network namespace, or None."""
    try:
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
    except OSError:
        return None
    try:
        nl.settimeout(2.0)
        for family in (socket.AF_INET, socket.AF_INET6):
            # inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed inet_diag_sockid (48 bytes)
            req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN) + bytes(48)
            header = struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
            nl.send(header + req)
            done = False
            found: tuple[int, int] | None = None
            while not done:
                data = nl.recv(1 << 16)
                if not data:
                    break
                offset = 0
                while offset + 16 <= len(data):
                    length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
                    if length < 16:
                        done = True
                        break
                    if kind in (_NLMSG_DONE, _NLMSG_ERROR):
                        done = True
                        break
                    body = offset + 16
                    # inet_diag_msg: 4 bytes, sockid (48), expires, rqueue, wqueue, uid, inode
                    if length >= 16 + 72:
                        rqueue, wqueue, _uid, msg_inode = struct.unpack_from("=IIII", data, body + 56)
                        if msg_inode == inode:
                            found = (wqueue, rqueue)
                    offset += (length + 3) & ~3
            if found is not None:
                return found
        return None
    except OSError:
        return None
    finally:
        nl.close()


# --- reading the options ----------------------------------------------------------------------


def read_options(pid: int, local_port: int, remote_port: int | None) -> dict[str, object]:
    entry, target_fd = find_socket(pid, local_port, remote_port)
    fd = pidfd_getfd(pid, target_fd)
    try:
        if os.fstat(fd).st_ino != entry.inode:
            raise Failure(f"fd {target_fd} of process {pid} changed while being read; try again", 1)
        sock = socket.socket(fileno=fd)
    except BaseException:
        os.close(fd)
        raise
    try:
        result: dict[str, object] = {
            "nodelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
            "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
            "rcvbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            "sndbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            "reuseaddr": sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0,
            "family": entry.family,
            "state": _TCP_STATES.get(entry.state, str(entry.state)),
            "inode": entry.inode,
        }
    finally:
        sock.close()  # only our duplicate: the target's socket is untouched
    if remote_port is None:
        queues = listen_queues(entry.inode)
        if queues is not None:
            result["backlog"], result["acceptQueue"] = queues
    return result


def self_test(pid: int) -> dict[str, object]:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = sorted(int(n) for n in os.listdir(fd_dir))
    except FileNotFoundError:
        raise Failure(f"process {pid} does not exist", 1) from None
    except PermissionError:
        raise Failure(f"cannot list {fd_dir}: permission denied (needs ptrace access to process {pid})", 3) from None
    last: Failure | None = None
    for target_fd in fds:
        try:
            fd = pidfd_getfd(pid, target_fd)
        except Failure as e:
            if e.code == 3:
                raise
            last = e
            continue  # closed meanwhile: try the next one
        try:
            os.fstat(fd)
        finally:
            os.close(fd)
        return {"ok": True, "pid": pid, "fd": target_fd}
    raise last or Failure(f"process {pid} has no open fd to try pidfd_getfd on", 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Read a TCP socket's options from the kernel, in another process.")
    parser.add_argument("--pid", type=int, help="process holding the socket")
    parser.add_argument("--local-port", type=int, help="the socket's local port")
    parser.add_argument("--remote-port", type=int, help="the socket's remote port (a connected socket)")
    parser.add_argument("--listen", action="store_true", help="the listening socket on --local-port")
    parser.add_argument("--self-test", action="store_true", help="check that pidfd_getfd works on --pid (default: parent)")
    args = parser.parse_args(argv)
    try:
        if sys.platform != "linux":
            raise Failure("this needs Linux (/proc, pidfd_getfd)", 3)
        if args.self_test:
            result = self_test(args.pid if args.pid is not None else os.getppid())
        else:
            if args.pid is None or args.local_port is None:
                parser.error("--pid and --local-port are required")
            if args.listen == (args.remote_port is not None):
                parser.error("give either --remote-port or --listen")
            for port in (args.local_port, args.remote_port):
                if port is not None and not 0 < port < 65536:
                    parser.error(f"port out of range: {port}")
            result = read_options(args.pid, args.local_port, None if args.listen else args.remote_port)
    except Failure as e:
        print(f"sockopt.py: {e}", file=sys.stderr)
        return e.code
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
