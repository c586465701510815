"""A real mosquitto broker for tests: own config, free loopback ports, TLS with a generated CA, passwords, ACLs.

``Mosquitto(directory, ...)`` writes everything it needs into ``directory``
(config, certificates, password file, persistence, log), starts the broker,
and waits until every listener accepts connections. ``restart()`` keeps the
ports and the persistence file, as an operator restarting the broker would.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import free_port


def mosquitto_binary() -> str:
    """The broker executable (Debian installs it in /usr/sbin, often outside PATH)."""
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if path is None:
        raise RuntimeError(
            "mosquitto is not installed (infra/setup.sh installs the Debian package)"
        )
    return path


@dataclass(frozen=True)
class BrokerCa:
    """PEM files of a throwaway CA and a server certificate for localhost / 127.0.0.1."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca_key_file: Path | None = None


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def issue_client_certificate(ca: BrokerCa, directory: Path, common_name: str) -> tuple[Path, Path]:
    """A client certificate (and its key) for ``common_name``, signed by the test CA: for mutual TLS."""
    assert ca.ca_key_file is not None, "the CA was made without keeping its key"
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = serialization.load_pem_private_key(ca.ca_key_file.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca.ca_file.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "VeriStream test fleet"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file = directory / f"{common_name}.pem"
    key_file = directory / f"{common_name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_file, key)
    return cert_file, key_file


def make_test_ca(directory: Path) -> BrokerCa:
    """Generate a CA and a server certificate it signs (P-256, one day)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "VeriStream test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    ca_key_file = directory / "ca.key"
    _write_key(ca_key_file, ca_key)
    return BrokerCa(ca_file, cert_file, key_file, ca_key_file)


def _wait_listening(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Mosquitto:
    """One broker process with a plain listener and optional TLS, WebSocket and password settings."""

    def __init__(
        self,
        directory: Path,
        *,
        tls: bool = False,
        websockets: bool = False,
        users: dict[str, str] | None = None,
        acls: dict[str, list[str]] | None = None,
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.ws_port = free_port() if websockets else None
        self.ca = make_test_ca(directory / "tls") if tls else None
        self.users = users or {}
        # user -> ACL lines such as "write fleet/dev-a/#" (mosquitto's acl_file ``topic`` rules)
        self.acls = acls or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.config_file = directory / "mosquitto.conf"
        self.log_file = directory / "mosquitto.log"
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            "persistence true",
            f"persistence_location {self.directory}/",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # As root, mosquitto would switch to a 'mosquitto' user that cannot read our files.
            f"user {getpass.getuser()}",
            "max_queued_messages 100000",
            "max_inflight_messages 1000",
        ]
        if self.users:
            password_file = self.directory / "passwords"
            password_file.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(password_file), user, password], check=True
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
            if self.acls:
                acl_file = self.directory / "acl"
                rules: list[str] = []
                for user, topics in self.acls.items():
                    rules += [f"user {user}", *(f"topic {rule}" for rule in topics), ""]
                acl_file.write_text("\n".join(rules))
                lines.append(f"acl_file {acl_file}")
        else:
            lines.append("allow_anonymous true")
        lines.append(f"listener {self.port} 127.0.0.1")
        if self.ca is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.ca.ca_file}",
                f"certfile {self.ca.cert_file}",
                f"keyfile {self.ca.key_file}",
                "require_certificate false",
            ]
        if self.ws_port is not None:
            lines += [f"listener {self.ws_port} 127.0.0.1", "protocol websockets"]
        self.config_file.write_text("\n".join(lines) + "\n")

    @property
    def ports(self) -> list[int]:
        """Every listener's port."""
        return [p for p in (self.port, self.tls_port, self.ws_port) if p is not None]

    def start(self, timeout_s: float = 10.0) -> Mosquitto:
        """Start the broker and wait for all listeners."""
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        for port in self.ports:
            if not _wait_listening(port, deadline) or self.process.poll() is not None:
                log = self.log_file.read_text() if self.log_file.exists() else ""
                self.stop()
                raise RuntimeError(f"mosquitto did not start on {port}: {log[-2000:]}")
        return self

    def stop(self) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file first)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same ports."""
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
