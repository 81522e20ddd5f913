"""A throwaway PostgreSQL cluster of its own (initdb + pg_ctl), for tests that stop and start the server.

Made in a temporary directory, on a free port of 127.0.0.1, trust authentication, the
unix socket in the directory too: the machine's own server is never touched. initdb
and the server refuse to run as root, so as root every command runs as an unprivileged
user (``postgres``, else ``nobody``) through ``runuser``, and that user owns the
directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.services import unavailable

__all__ = ["Cluster", "ClusterUnavailable", "find_bindir", "throwaway_cluster"]

_USERS = ("postgres", "nobody")
_TIMEOUT = 60


class ClusterUnavailable(Exception):
    """This machine cannot run a throwaway cluster (no binaries, no user to run them as)."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl (the newest installed version first)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    raise ClusterUnavailable("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")


def _run_as() -> pwd.struct_passwd | None:
    """The user to run the server as: None (this one) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in _USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ClusterUnavailable(f"running as root and none of the users {_USERS} exists to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One throwaway cluster: `create`, then `start` / `stop` as often as needed, then `destroy`."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.user = _run_as()
        if self.user is not None and not shutil.which("runuser"):
            raise ClusterUnavailable("running as root and runuser is not installed")
        self.root = Path(tempfile.mkdtemp(prefix="actorflow-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            argv = ["runuser", "-u", self.user.pw_name, "--", *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        result = subprocess.run(
            argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
        if result.returncode != 0:
            msg = f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{self.tail()}"
            raise RuntimeError(msg)
        return result

    def tail(self, lines: int = 40) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def create(self) -> None:
        """initdb, configured to listen on a free port of 127.0.0.1 only, then started."""
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.root.chmod(0o700)
        self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        for attempt in range(3):  # the free port may be taken between the check and the start
            self.port = _free_port()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.root}'\nfsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\nshared_buffers = 16MB\nmax_connections = 100\n"
                )
            try:
                self.start()
            except RuntimeError:
                if attempt == 2:
                    raise
            else:
                return

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._cmd("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(_TIMEOUT))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: cut every session, a clean shutdown) and wait until it is gone."""
        self._cmd("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", str(_TIMEOUT))

    def running(self) -> bool:
        """Whether the postmaster is up (pg_ctl status)."""
        try:
            self._cmd("pg_ctl", "status", "-D", str(self.data))
        except RuntimeError:
            return False
        return True

    def destroy(self) -> None:
        """Stop the server if it runs (immediately; killing its postmaster if pg_ctl cannot), remove the directory."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)  # our own postmaster
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A cluster, created and always removed after; the test skips (fails in CI) where none can run."""
    try:
        made = Cluster()
    except ClusterUnavailable as exc:
        unavailable(f"no throwaway PostgreSQL cluster: {exc}")
    try:
        made.create()
        yield made
    finally:
        made.destroy()
