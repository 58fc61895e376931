"""A throwaway PostgreSQL server for tests, benchmarks and CI: `initdb` into a temporary directory, then `pg_ctl`
on a free loopback port, with its socket in that directory too. Nothing of the machine's own clusters is touched.

    with TemporaryPostgres() as pg:          # or pg.start() / pg.stop()
        url = pg.url                         # postgresql://postgres@127.0.0.1:PORT/postgres
        pg.stop_server(); pg.start_server()  # an outage, keeping the data

As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root). From a shell (`.ci/run` does this):

    python -m oh_lsp.testing.postgres_server start DIR   # prints the URL
    python -m oh_lsp.testing.postgres_server stop DIR
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

SERVICE_USER = "postgres"
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}  # tests: no durability


def bin_dir() -> Path | None:
    """Where `initdb` and `pg_ctl` are: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TemporaryPostgres:
    """A PostgreSQL cluster in `base` (default: a new temporary directory), trust auth on 127.0.0.1 only."""

    def __init__(
        self, base: str | Path | None = None, *, settings: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        found = bin_dir()
        if found is None:
            raise RuntimeError(
                "PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql"
            )
        self.bin: Path = found
        self._own_base = base is None
        self.base = Path(base) if base is not None else Path(tempfile.mkdtemp(prefix="oh-lsp-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = port or free_port()
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://{SERVICE_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_root:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}\n{log}")

    def start(self) -> str:
        """Create the cluster (first time only) and start it. Returns the URL."""
        self.base.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.base, SERVICE_USER)
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                SERVICE_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
        self.start_server()
        return self.url

    def start_server(self) -> None:
        options = [f"-p {self.port}", f"-k {self.base}", "-c listen_addresses=127.0.0.1"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", " ".join(options)
        )

    def stop_server(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def running(self) -> bool:
        pid = self.data / "postmaster.pid"
        return pid.exists()

    def stop(self) -> None:
        """Stop the server if it runs, and delete a directory this object created."""
        if self.running():
            try:
                self.stop_server("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="A throwaway PostgreSQL server in DIR on a free loopback port.")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    port_file = args.dir / "port"
    if args.action == "start":
        pg = TemporaryPostgres(args.dir)
        url = pg.start()
        port_file.write_text(str(pg.port))
        print(url)
    else:
        port = int(port_file.read_text()) if port_file.exists() else None
        pg = TemporaryPostgres(args.dir, port=port)
        if pg.running():
            pg.stop_server("fast")


if __name__ == "__main__":
    main()
