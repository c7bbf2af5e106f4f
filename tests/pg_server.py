"""A real PostgreSQL server for the tests, from the distribution's binaries.

``pg_server`` (session-scoped) runs ``initdb`` into a fresh temporary
directory and starts ``postgres`` listening only on 127.0.0.1 at a free port
(and on a unix socket in that directory), with trust authentication and
durability switched off (tests do not survive power cuts). It yields the DSN
of an empty database and stops the server by PID (SIGINT: fast shutdown) at
the end of the session.

initdb refuses to run as root: as root, the server runs as the ``postgres``
user the Debian package creates (else ``nobody``). Without the binaries the
tests that use it are skipped.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SUPERUSER = "igneous"
DATABASE = "igneous_test"


def find_bindir() -> str | None:
    """Directory holding initdb and postgres: $PG_BINDIR, Debian's layout, or $PATH."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    which = shutil.which("initdb")
    candidates.append(os.path.dirname(which) if which else "")
    for d in candidates:
        if d and all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "postgres")):
            return d
    return None


def _server_user() -> pwd.struct_passwd | None:
    """The account to run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _as(user: pwd.struct_passwd | None) -> dict:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _wait_ready(dsn: str, proc: subprocess.Popen, log: str, timeout: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError as e:
            if proc.poll() is not None:
                with open(log) as f:
                    raise RuntimeError(f"postgres exited with {proc.returncode}: {f.read()[-2000:]}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections within {timeout} s: {e}") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)  # "fast shutdown": abort sessions, exit cleanly
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def running_postgres(bindir: str, user: pwd.struct_passwd | None) -> Iterator[str]:
    """A throw-away server on 127.0.0.1 (stopped by PID on exit): its database DSN."""
    # not under pytest's tmp dir: that is private to us, and the server may run as another user
    root = tempfile.mkdtemp(prefix="igneous-pg-")
    data, log = os.path.join(root, "data"), os.path.join(root, "server.log")
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    proc = None
    try:
        init = subprocess.run(
            [os.path.join(bindir, "initdb"), "-D", data, "-U", SUPERUSER, "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, cwd=root, **_as(user),
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
        from tests.conftest import free_port  # here, not at the top: conftest imports us

        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [os.path.join(bindir, "postgres"), "-D", data, "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root,
                start_new_session=True, **_as(user),
            )
        base = f"postgresql://{SUPERUSER}@127.0.0.1:{port}"
        _wait_ready(f"{base}/postgres", proc, log)
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        yield f"{base}/{DATABASE}"
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Start a throw-away PostgreSQL server; yield ``postgresql://...`` for an empty database."""
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found; apt-get install postgresql")
    user = _server_user()
    try:
        with running_postgres(bindir, user) as dsn:
            yield dsn
    except RuntimeError as e:
        pytest.fail(str(e))
