"""Test certificates, made fresh with Debian's openssl for each test session (never committed):
a CA, a server certificate for 127.0.0.1/localhost, client certificates, an expired server
certificate, a server certificate for another name, and a second, untrusted CA with a server
certificate of its own."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

CLIENT_SUBJECT = "/C=NL/O=Once Test/OU=payments/CN=alice"
# What Kafka's default principal builder makes of it: X500Principal.getName(), RFC 2253 order.
CLIENT_PRINCIPAL = "User:CN=alice,OU=payments,O=Once Test,C=NL"
KEY_PASSWORD = "correct horse"
# A broker's certificate serves its listeners and its own connections to the other brokers, so it
# carries both extended key usages, as Kafka's keystore certificates must for inter-broker mTLS.
BROKER_SUBJECT = "/O=Once Test/CN=broker"
BROKER_PRINCIPAL = "User:CN=broker,O=Once Test"


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr}")


@dataclass(frozen=True)
class Pair:
    certificate: Path
    key: Path


@dataclass(frozen=True)
class TLSMaterial:
    directory: Path
    ca: Pair
    server: Pair
    client: Pair
    expired_server: Pair
    untrusted_ca: Pair
    untrusted_server: Pair
    untrusted_client: Pair
    misnamed_server: Pair
    encrypted_server_key: Path
    wrong_key: Path
    broker: Pair

    def broker_args(self, *, client_auth: str | None = None, server: Pair | None = None) -> list[str]:
        """Flags for a broker presenting `server` (default: the trusted server certificate)."""
        server = server or self.server
        args = [
            "--ssl-certificate-location", str(server.certificate),
            "--ssl-key-location", str(server.key),
        ]
        if client_auth:
            args += ["--ssl-client-auth", client_auth, "--ssl-ca-location", str(self.ca.certificate)]
        return args


def _key(directory: Path, name: str) -> Path:
    path = directory / f"{name}.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path), cwd=directory)
    return path


def _ca(directory: Path, name: str, subject: str) -> Pair:
    key = _key(directory, name)
    cert = directory / f"{name}.pem"
    openssl(
        "req", "-x509", "-new", "-key", str(key), "-subj", subject, "-days", "30", "-out", str(cert),
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    return Pair(cert, key)


def _leaf(directory: Path, name: str, subject: str, ca: Pair, *, server: bool,
          names: str = "IP:127.0.0.1,DNS:localhost", usage: str | None = None) -> Pair:
    key = _key(directory, name)
    csr = directory / f"{name}.csr"
    cert = directory / f"{name}.pem"
    openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=directory)
    ext = directory / f"{name}.ext"
    usage = usage or ("serverAuth" if server else "clientAuth")
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", f"extendedKeyUsage={usage}"]
    if server:
        lines.append(f"subjectAltName={names}")
    ext.write_text("\n".join(lines) + "\n")
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.certificate), "-CAkey", str(ca.key), "-CAcreateserial",
        "-days", "30", "-extfile", str(ext), "-out", str(cert),
        cwd=directory,
    )
    return Pair(cert, key)


def _expired_server(directory: Path, ca: Pair) -> Pair:
    """Valid for one day in 2020: `openssl ca` is the tool that takes explicit dates in 3.0."""
    key = _key(directory, "expired")
    csr = directory / "expired.csr"
    cert = directory / "expired.pem"
    openssl(
        "req", "-new", "-key", str(key), "-subj", "/CN=127.0.0.1", "-out", str(csr),
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", cwd=directory,
    )
    ca_dir = directory / "ca-db"
    (ca_dir / "new").mkdir(parents=True)
    (ca_dir / "index.txt").write_text("")
    (ca_dir / "serial").write_text("1000\n")
    config = directory / "ca.cnf"
    config.write_text(
        f"""[ca]
default_ca = test
[test]
database = {ca_dir}/index.txt
new_certs_dir = {ca_dir}/new
serial = {ca_dir}/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
"""
    )
    openssl(
        "ca", "-batch", "-config", str(config), "-cert", str(ca.certificate), "-keyfile", str(ca.key),
        "-in", str(csr), "-out", str(cert), "-notext",
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
        cwd=directory,
    )
    return Pair(cert, key)


def make_tls_material(directory: Path) -> TLSMaterial:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca", "/O=Once Test/CN=Once Test CA")
    server = _leaf(directory, "server", "/O=Once Test/CN=127.0.0.1", ca, server=True)
    client = _leaf(directory, "client", CLIENT_SUBJECT, ca, server=False)
    expired = _expired_server(directory, ca)
    untrusted_ca = _ca(directory, "untrusted-ca", "/O=Someone Else/CN=Untrusted CA")
    untrusted_server = _leaf(directory, "untrusted-server", "/CN=127.0.0.1", untrusted_ca, server=True)
    untrusted_client = _leaf(directory, "untrusted-client", "/CN=mallory", untrusted_ca, server=False)
    encrypted = directory / "server-encrypted.key"
    openssl(
        "pkey", "-in", str(server.key), "-aes256", "-passout", f"pass:{KEY_PASSWORD}", "-out", str(encrypted),
        cwd=directory,
    )
    wrong_key = _key(directory, "wrong")
    misnamed = _leaf(directory, "misnamed", "/CN=elsewhere.example", ca, server=True, names="DNS:elsewhere.example")
    broker = _leaf(directory, "broker", BROKER_SUBJECT, ca, server=True, usage="serverAuth,clientAuth")
    return TLSMaterial(
        broker=broker,
        directory=directory, ca=ca, server=server, client=client, expired_server=expired,
        untrusted_ca=untrusted_ca, untrusted_server=untrusted_server, untrusted_client=untrusted_client,
        misnamed_server=misnamed, encrypted_server_key=encrypted, wrong_key=wrong_key,
    )
