"""A real PostgreSQL server for the shared-store tests (test_store_postgres.py): Debian's
`postgresql` binaries, a data folder of its own under /tmp, a free loopback port, TLS with a
certificate made here, and a role that logs in with a password (SCRAM) over TCP.

PostgreSQL refuses to run as root: under root the server runs as the `postgres` user, started
and stopped by its PID (SIGINT: fast shutdown, as `pg_ctl stop -m fast` does). The tests query
the server with `psql` over its Unix socket as the superuser, without a password.
"""

from __future__ import annotations

import datetime
import glob
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness import free_port, wait_until


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (/usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost, signed by it: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portcullis test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (folder / "ca.pem", folder / "server.crt", folder / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, with `role` (password `password`) owning
    the database `database`."""

    def __init__(self, role="portcullis", database="portcullis"):
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql; `make test-deps` installs it)")
        self.bin = bindir
        self.role = role
        self.database = database
        self.password = "pg-" + secrets.token_hex(12)
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="portcullis-pg-"))
        self.data = self.folder / "data"
        self.socket_dir = self.folder
        self.log = self.folder / "server.log"
        self.proc: subprocess.Popen | None = None
        # Root runs the server as `postgres`; anyone else as themselves.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.ca, cert, key = make_tls_files(self.folder)
        self._as_owner(["initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                        "--auth-local=trust", "--auth-host=scram-sha-256"])
        for path in (cert, key):
            shutil.copy(path, self.data / path.name)
            if self.user:
                os.chown(self.data / path.name, entry.pw_uid, entry.pw_gid)
            os.chmod(self.data / path.name, 0o600)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# portcullis tests\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n")
        self.start()
        self.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{self.password}'")
        self.psql(f"CREATE DATABASE {database} OWNER {role}")

    def _as_owner(self, argv: list[str]):
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120, cwd=self.folder)

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.socket_dir),
             "-c", "listen_addresses=127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, user=self.user, group=self.user, cwd=self.folder)
        log.close()
        wait_until(self._accepts, timeout=30, interval=0.05, message="PostgreSQL to accept connections")

    def _accepts(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n" + self.log.read_text()[-3000:])
        return subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", str(self.socket_dir), "-p", str(self.port)],
                              capture_output=True).returncode == 0

    def stop(self):
        """Fast shutdown by PID: open sessions are ended, as when a database host restarts."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str | None = None, sslmode: str = "disable", **params) -> str:
        query = "&".join([f"sslmode={sslmode}", *(f"{k}={v}" for k, v in params.items())])
        return f"postgresql://{self.role}@127.0.0.1:{self.port}/{database or self.database}?{query}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs `sql` as the superuser; returns the rows unaligned, `|`-separated, without headers."""
        proc = subprocess.run(
            [str(self.bin / "psql"), "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", database,
             "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def dump(self, database: str | None = None) -> str:
        """Every row of the database, as pg_dump writes it."""
        proc = subprocess.run(
            [str(self.bin / "pg_dump"), "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "--data-only",
             database or self.database],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
