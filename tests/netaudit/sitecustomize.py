"""Network audit for the test suite: every Python process the suite starts finds this file through PYTHONPATH (set by
tests/conftest.py) and records, in the file named by TEST_NET_AUDIT_LOG, any connection or name lookup that is not
on the loopback. The suite fails at its end if that file has a line (tests talk only to 127.0.0.1; so the key can
reach no host but the configured, local base URL)."""

from __future__ import annotations

import os
import sys

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in LOOPBACK_NAMES:
        return True
    return isinstance(host, str) and (host.startswith("127.") or host in {"::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"})


def outside_loopback(event: str, args: tuple) -> str | None:
    """What a `socket.connect`/`socket.getaddrinfo`/`socket.gethostbyname` audit event reached beyond the loopback."""
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address and not is_loopback(address[0]):
            return f"connect {address[0]}:{address[1] if len(address) > 1 else ''}"
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        if args and not is_loopback(args[0]):
            return f"{event.split('.')[1]} {args[0]}"
    return None


def install(log_path: str) -> None:
    def hook(event: str, args: tuple) -> None:
        if not event.startswith("socket."):
            return
        reached = outside_loopback(event, args)
        if reached:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()} {' '.join(sys.argv)[:200]}: {reached}\n")

    sys.addaudithook(hook)


if os.environ.get("TEST_NET_AUDIT_LOG"):
    install(os.environ["TEST_NET_AUDIT_LOG"])
