"""The sandbox launcher: ``python -I -S launch.py SPEC_JSON -- COMMAND...`` sets up the layers SPEC asks for in its
own process, then execs COMMAND. Standard library only (it runs before anything is imported, and inside bubblewrap).

Layers, in this order:
1. rlimits (CPU seconds, address space, no core files): always;
2. ``namespaces`` (built in, through ``unshare(2)``, when bubblewrap is not used): a user namespace mapping only
   the caller's own uid, a mount namespace where the mount plan is applied (the project copy bound over the real
   project's path, a tmpfs on /tmp, HOME and the hidden folders, the interpreter folders bound back read-only,
   everything else remounted read-only), a PID namespace with its own /proc (its init ends every process left when
   the command exits), a network namespace holding only a loopback interface, and no capabilities;
3. ``landlock`` (Linux >= 5.13): the filesystem readable only below the ``read`` paths, writable only below the
   ``write`` paths; TCP connect/bind refused when the network is denied and no network namespace exists (ABI >= 4);
   signals and abstract unix sockets scoped to the sandbox (ABI >= 6). Landlock also forbids reading
   ``/proc/<pid>/environ`` (a ptrace-mode access) of any process outside the sandbox.

``--probe`` prints, as JSON, what this kernel allows: {"landlock": ABI or 0, "namespaces": null or the error}.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import socket
import struct
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

# --- system calls ---------------------------------------------------------------------------------------------------
LINUX = sys.platform.startswith("linux")  # elsewhere no layer exists: only rlimits and the plain exec
_libc = ctypes.CDLL(None, use_errno=True)
if LINUX:
    _libc.syscall.restype = ctypes.c_long
    _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446  # every arch

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_SET_CHILD_SUBREAPER = 36

FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
READ_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR


class LayerError(OSError):
    """A layer the spec asks for cannot be set up here."""


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise LayerError(err, f"{what}: {os.strerror(err)}")
    return result


def landlock_abi() -> int:
    """The Landlock ABI version of this kernel, 0 when it has none (or it is disabled)."""
    if not LINUX:
        return 0
    version = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(version), 0)


# --- Landlock -------------------------------------------------------------------------------------------------------
def apply_landlock(read: list[str], write: list[str], deny_tcp: bool, scope: bool, listable: Iterable[str] = ()) -> int:
    """Restrict this process (and what it execs) to `read`/`write` paths (and `listable` folders, whose files stay
    unreadable); returns the ABI used."""
    abi = landlock_abi()
    if abi < 1:
        raise LayerError(0, "Landlock is not available in this kernel")
    fs = FS_ABI1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if deny_tcp and abi >= 4 else 0
    ports = _ephemeral_ports() if net else range(0)
    scoped = SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET if scope and abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)
    ruleset = _check(
        _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )
    try:
        for paths, rights in ((listable, FS_READ_DIR), (read, READ_RIGHTS), (write, fs)):
            for path in paths:
                _add_path_rule(ruleset, path, rights & fs)
        for port in ports:  # a test's own loopback server binds port 0 and is reached on an ephemeral port
            rights = NET_BIND_TCP | NET_CONNECT_TCP if port else NET_BIND_TCP
            attr = struct.pack("=QQ", rights, port)
            _check(_libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, ctypes.c_int(2), attr, ctypes.c_uint32(0)), "port")
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _ephemeral_ports() -> list[int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low, high = (int(v) for v in ports.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return [0, *range(low, high + 1)]


def _add_path_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist here needs no rule
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        attr = struct.pack("=Qi", rights, fd)
        _check(_libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, ctypes.c_int(1), attr, ctypes.c_uint32(0)), path)
    finally:
        os.close(fd)


# --- namespaces -----------------------------------------------------------------------------------------------------
def enter_namespaces(network: bool) -> None:
    """Unshare user, mount, PID, IPC, UTS and (unless `network`) network namespaces, mapping only our own ids."""
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | (0 if network else CLONE_NEWNET)
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if v is None else os.fsencode(v) for v in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def apply_mount_plan(plan: list[list[Any]], writable: list[str]) -> None:
    """`plan`: [["tmpfs", dst] | ["bind", src, dst, writable?]] in order. Bind sources are opened before anything
    is covered, so a folder under /tmp or HOME can be bound back after a tmpfs hides it. Afterwards every other
    mount is remounted read-only."""
    sources, directories = {}, set()
    for op in plan:
        if op[0] == "bind":
            sources[op[1]] = os.open(op[1], os.O_PATH | os.O_CLOEXEC)
            if os.path.isdir(op[1]):
                directories.add(op[1])
    for op in plan:
        if op[0] == "tmpfs":
            _mountpoint(op[1], True)
            _mount("tmpfs", op[1], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        elif op[0] == "devpts":
            _private_ptys()
        else:
            src, dst, rw = op[1], op[2], op[3]
            _mountpoint(dst, src in directories)
            _mount(f"/proc/self/fd/{sources[src]}", dst, None, MS_BIND | MS_REC)
            if not rw:
                _remount_read_only(dst, _mount_flags(dst))
    for fd in sources.values():
        os.close(fd)
    _read_only_elsewhere(writable)


def _private_ptys() -> None:
    """A devpts instance of the sandbox's own on /dev/pts (and its ptmx on /dev/ptmx): terminals (tmux, pty) work,
    the user's own terminals are not there. Left as it is where the kernel refuses."""
    try:
        _mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
        _mount("/dev/pts/ptmx", "/dev/ptmx", None, MS_BIND)
    except LayerError:
        pass


def _mountpoint(path: str, directory: bool) -> None:
    if os.path.lexists(path):
        return
    os.makedirs(path if directory else os.path.dirname(path), exist_ok=True)
    if not directory:
        open(path, "a").close()


_FLAG_NAMES = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME}
_FLAG_NAMES.update(nodiratime=MS_NODIRATIME, relatime=MS_RELATIME, strictatime=MS_STRICTATIME, ro=MS_RDONLY)


def _mounts() -> list[tuple[str, int]]:
    """(mount point, flags) of every mount, from /proc/self/mountinfo."""
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # \040 is a space
            flags = 0
            for option in fields[5].split(","):
                flags |= _FLAG_NAMES.get(option, 0)
            found.append((point, flags))
    return found


def _mount_flags(path: str) -> int:
    return dict(_mounts()).get(path, 0)


def _remount_read_only(path: str, flags: int) -> None:
    try:
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)
    except LayerError:
        pass  # a mount this namespace may not change (it stays as it was; Landlock still guards writes)


def _read_only_elsewhere(writable: list[str]) -> None:
    for point, flags in _mounts():
        if flags & MS_RDONLY or point.startswith(("/proc", "/sys")) or _below_any(point, writable):
            continue
        _remount_read_only(point, flags)


def _below_any(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _loopback_up() -> None:
    """Bring up `lo` in the new network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS with IFF_UP)."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, 0x8913, request))[1]
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))


def _drop_capabilities() -> None:
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0:
            break
    _libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


# --- the run --------------------------------------------------------------------------------------------------------
def _limits(limits: dict[str, Any]) -> None:
    import resource

    if limits.get("cpu"):
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 5))
    if limits.get("memory"):
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory"], limits["memory"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _init(child: int) -> NoReturn:
    """PID 1 of the sandbox: reap every process until `child` ends, then exit with its status (the kernel then
    kills whatever is left in the namespace)."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: os.kill(child, number))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            os._exit(_exit_status(status))


def _children() -> list[int]:
    found = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as children:
                found += [int(pid) for pid in children.read().split()]
    except OSError:
        pass
    return found


def _reaper(child: int) -> NoReturn:
    """Without a PID namespace: wait for `child`, then kill every process it left (orphans come to us, the
    subreaper) and exit with its status."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: os.kill(child, number))
    _, status = os.waitpid(child, 0)
    for _ in range(100):
        left = _children()
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            break
    os._exit(_exit_status(status))


def _fail(message: str) -> NoReturn:
    os.write(2, f"oh-lsp sandbox: {message}\n".encode())
    os._exit(125)


def run(spec: dict[str, Any], argv: list[str]) -> None:
    _limits(spec.get("limits", {}))
    namespaces = spec.get("namespaces")
    if namespaces:
        try:
            enter_namespaces(spec.get("network", False))
            apply_mount_plan(namespaces["plan"], namespaces["writable"])
        except (LayerError, OSError) as exc:
            _fail(f"cannot set up the namespaces: {exc}")
        pid = os.fork()  # the first child is PID 1 of the new PID namespace
        if pid:
            _, status = os.waitpid(pid, 0)
            os._exit(_exit_status(status))
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            if not spec.get("network", False):
                _loopback_up()
        except (LayerError, OSError) as exc:
            _fail(f"cannot set up /proc or the loopback: {exc}")
    if spec.get("reap") and not namespaces and LINUX:  # the reaper stays outside Landlock: the command cannot signal it
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        child = os.fork()
        if child:
            _reaper(child)
    landlock = spec.get("landlock")
    if landlock:
        try:
            rules = (landlock["read"], landlock["write"], landlock.get("deny_tcp", False), True)
            apply_landlock(*rules, landlock.get("listable", ()))
        except (LayerError, OSError) as exc:
            _fail(f"cannot apply Landlock: {exc}")
    if namespaces:
        child = os.fork()
        if child:
            _init(child)
    if namespaces or landlock:
        _drop_capabilities()  # none for the command, root or not
    if spec.get("chdir"):
        os.chdir(spec["chdir"])
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        _fail(f"cannot run {argv[0]}: {exc}")


def probe() -> dict[str, Any]:
    """What this kernel allows, tried in a throwaway child: {"landlock": ABI, "namespaces": None or the error}."""
    result: dict[str, Any] = {"landlock": landlock_abi(), "namespaces": None}
    if not LINUX:
        return {**result, "namespaces": f"not Linux ({sys.platform})"}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        message = b""
        try:
            enter_namespaces(False)
            inner = os.fork()
            if inner == 0:
                try:
                    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                    _loopback_up()
                except OSError as exc:
                    os.write(write, str(exc).encode())
                    os._exit(1)
                os._exit(0)
            _, status = os.waitpid(inner, 0)
            if status != 0:
                os._exit(1)
        except OSError as exc:
            message = str(exc).encode()
        os.write(write, message)
        os._exit(1 if message else 0)
    os.close(write)
    why = os.read(read, 4096).decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        result["namespaces"] = why or "the namespaces could not be set up"
    return result


def main(args: list[str]) -> None:
    if args[:1] == ["--probe"]:
        print(json.dumps(probe()))
        return
    if len(args) < 3 or args[1] != "--":
        _fail("usage: launch.py SPEC_JSON -- COMMAND...")
    run(json.loads(args[0]), args[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
