"""Helpers for integration tests: a gateway on an ephemeral port, raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.server import Gateway
from gateway.tokens import issue_token

SECRET = "test-secret"


def token(user: str = "alice", ttl: float = 60, **kw: Any) -> str:
    return issue_token(SECRET, user, ttl, **kw)


def auth_message(user: str = "alice", **kw: Any) -> str:
    return json.dumps({"type": "auth", "token": token(user, **kw)})


@contextlib.asynccontextmanager
async def running_gateway(**kw: Any) -> AsyncIterator[Gateway]:
    """A gateway on 127.0.0.1:<ephemeral>, hmac verifier with SECRET, echo app by default."""
    objects = ("verifier", "app", "on_connect", "on_message", "on_close")
    # A string ``app`` names a built-in (config); an object is passed as is.
    gw_kwargs = {k: kw.pop(k) for k in list(kw) if k in objects and not isinstance(kw[k], str)}
    options: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "secret": SECRET, "node_id": 7}
    options.update(kw)
    gateway = Gateway(Config(**options), **gw_kwargs)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.shutdown(grace=1.0)


def url(gw: Gateway, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{gw.port}{path}"


UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)


class RecordingTransport:
    """What a connection needs of its transport, recording every write (no socket)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("10.1.2.3", 5555) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def upgrade_request(path: str = "/ws", extra: str = "") -> bytes:
    return UPGRADE.format(path=path, extra=extra).encode()


async def raw_request(gw: Gateway, data: bytes, *, read_timeout: float = 2.0) -> bytes:
    """Send raw bytes, return everything the server sends until it closes (or timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        async with asyncio.timeout(read_timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except TimeoutError:
        pass
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 (node trusts it via NODE_EXTRA_CA_CERTS)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    alt = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(alt, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of a ``/metrics`` page: (sample name, labels) -> value.

    Parsed with prometheus-client's own parser, so a page it cannot read fails here."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value (KeyError naming it if absent)."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise KeyError(f"no sample {name}{labels}")
    return samples[key]
