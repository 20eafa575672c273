"""A throwaway PostgreSQL cluster for a test run: initdb in a temp dir, the server on a Unix socket
in that dir (no TCP port), run as an unprivileged user (postgres refuses root: when the tests run
as root, the user `pmbtest` is created once with useradd and the server runs under runuser).
Removed with stop(). Used by tests/e2e/test_db.py, test_ha.py and bench/ha_*.py; calls Debian's
postgresql binaries (/usr/lib/postgresql/*/bin) and psql."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import unittest

PG_USER = "pmbtest"


def pg_bin(name):
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name))
    if found:
        return found[-1]
    path = shutil.which(name)
    if not path:
        raise RuntimeError("PostgreSQL is not installed (make deps installs it): no " + name)
    return path


def available():
    try:
        pg_bin("initdb")
        return True
    except RuntimeError:
        return False


def _unprivileged_user():
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        PG_USER], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return PG_USER


class PgCluster:
    """start() -> self; url(dbname) for libpq; psql(sql) runs a statement; stop() removes it all."""

    def __init__(self, dbname="pmb"):
        self.dbname = dbname
        self.user = _unprivileged_user()
        self.dir = tempfile.mkdtemp(prefix="pmbpg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        self.running = False

    def _as_owner(self, argv, **kw):
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=self.dir, **kw)

    def _check(self, p, what):
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (what, p.returncode, p.stdout[-2000:]))
        return p

    def start(self):
        self._check(self._as_owner([pg_bin("initdb"), "-D", self.data, "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8", "--no-sync"]), "initdb")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\nlisten_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\n"
                    "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
                    % self.dir)
        self.server("start")
        self.psql("CREATE DATABASE %s" % self.dbname, db="postgres")
        return self

    def server(self, action, mode="fast"):
        """pg_ctl start / stop / restart (-m mode), waiting for it."""
        argv = [pg_bin("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60", action]
        if action != "start":
            argv += ["-m", mode]
        self._check(self._as_owner(argv), "pg_ctl " + action)
        self.running = action != "stop"

    def url(self, db=None, user="postgres"):
        return "postgresql://%s@/%s?host=%s" % (user, db or self.dbname, self.dir)

    def psql(self, sql, db=None, user="postgres"):
        """Run sql; returns the rows as lists of strings (unaligned, tab-separated)."""
        p = subprocess.run([pg_bin("psql"), "-X", "-q", "-A", "-t", "-F", "\t", "-v",
                            "ON_ERROR_STOP=1", "-h", self.dir, "-U", user, "-d", db or self.dbname,
                            "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError("psql failed: %s" % p.stderr.strip())
        return [line.split("\t") for line in p.stdout.splitlines() if line]

    def stop(self):
        if self.running:
            try:
                self.server("stop", mode="immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def fresh_db(cluster, name):
    """Drop and create database `name` on cluster; returns its URL."""
    cluster.psql("DROP DATABASE IF EXISTS %s" % name, db="postgres")
    cluster.psql("CREATE DATABASE %s" % name, db="postgres")
    return cluster.url(db=name)


def for_module():
    """A test module's cluster (setUpModule): started, or unittest.SkipTest without PostgreSQL."""
    if not available():
        raise unittest.SkipTest("PostgreSQL is not installed (make deps)")
    return PgCluster().start()
