"""A throwaway MariaDB server of its own (mariadb-install-db + mariadbd), for tests that stop and start the server.

Made in a temporary directory, on a free port of 127.0.0.1, root with no password, the
unix socket in the directory too: the machine's own server is never touched. As root
the server runs as the ``mysql`` user (``--user``), which then owns the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.services import unavailable

__all__ = ["Server", "ServerUnavailable", "throwaway_server"]

_TIMEOUT = 60
_USER = "mysql"


class ServerUnavailable(Exception):
    """This machine cannot run a throwaway server (no binaries, no user to run it as)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One throwaway server: `create`, then `start` / `stop` as often as needed, then `destroy`."""

    def __init__(self) -> None:
        self.install = shutil.which("mariadb-install-db")
        self.server = shutil.which("mariadbd") or (
            "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").is_file() else None
        )
        if self.install is None or self.server is None:
            raise ServerUnavailable("the MariaDB server binaries (mariadb-install-db, mariadbd) are not installed")
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam(_USER)
            except KeyError:
                raise ServerUnavailable(f"running as root and no {_USER!r} user exists to run MariaDB as") from None
        self.root = Path(tempfile.mkdtemp(prefix="actorflow-mariadb-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        """The DSN of the database ``actorflow`` (made by `create`)."""
        return f"mysql://root@127.0.0.1:{self.port}/actorflow"

    def _as_user(self) -> list[str]:
        return [] if self.user is None else [f"--user={self.user.pw_name}"]

    def tail(self, lines: int = 40) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def create(self) -> None:
        """mariadb-install-db, then the server started on a free port and the database ``actorflow`` made."""
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        assert self.install is not None
        result = subprocess.run(
            [
                self.install, "--no-defaults", f"--datadir={self.data}", *self._as_user(),
                "--auth-root-authentication-method=normal", "--skip-test-db",
            ],
            cwd=self.root, capture_output=True, text=True, timeout=_TIMEOUT, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            msg = f"mariadb-install-db failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            raise RuntimeError(msg)
        for attempt in range(3):  # the free port may be taken between the check and the start
            self.port = _free_port()
            try:
                self.start()
            except RuntimeError:
                if attempt == 2:
                    raise
            else:
                break
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE actorflow CHARACTER SET utf8mb4")

    def _connect(self) -> object:
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True, connect_timeout=2)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        assert self.server is not None
        self.proc = subprocess.Popen(
            [
                self.server, "--no-defaults", f"--datadir={self.data}", *self._as_user(), f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={self.root / 'sock'}", f"--pid-file={self.root / 'pid'}",
                f"--log-error={self.log}", "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=2",
                "--skip-name-resolve", "--max-connections=200",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import pymysql

        deadline = time.monotonic() + _TIMEOUT
        while True:
            if self.proc.poll() is not None:
                msg = f"mariadbd exited ({self.proc.returncode}):\n{self.tail()}"
                raise RuntimeError(msg)
            try:
                self._connect().close()  # type: ignore[attr-defined]
            except pymysql.err.Error:
                if time.monotonic() > deadline:
                    self.stop()
                    msg = f"mariadbd did not accept connections within {_TIMEOUT}s:\n{self.tail()}"
                    raise RuntimeError(msg) from None
                time.sleep(0.05)  # bounded polling of the server's readiness
            else:
                return

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: SIGTERM, a clean shutdown; ``immediate``: SIGKILL) and wait until it is gone."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if mode == "immediate":
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_TIMEOUT)

    def running(self) -> bool:
        """Whether the server process is up."""
        return self.proc is not None and self.proc.poll() is None

    def destroy(self) -> None:
        """Stop the server if it runs (immediately), remove the directory."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_server() -> Iterator[Server]:
    """A server, created and always removed after; the test skips (fails in CI) where none can run."""
    try:
        made = Server()
    except ServerUnavailable as exc:
        unavailable(f"no throwaway MariaDB server: {exc}")
    try:
        made.create()
        yield made
    finally:
        made.destroy()
