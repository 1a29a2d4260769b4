"""The shared HTTP plumbing (chalicelib/providers/upstream_http.py) over TLS: an https upstream with
a certificate the pool trusts is served, kept alive; one it does not trust is never spoken to."""
from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from pathlib import Path
from typing import Iterator

import pytest
from fakes.openai_server import FakeOpenAI

from chalicelib.providers.upstream_http import HttpPool, TransportError

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "over tls"}]}'


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[tuple[FakeOpenAI, Path]]:
    cert, key = self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    fake = FakeOpenAI()
    fake._server.socket = server_context.wrap_socket(fake._server.socket, server_side=True)
    with fake:
        yield fake, cert


def test_https_with_a_trusted_certificate_is_served_and_kept_alive(tls_upstream: tuple[FakeOpenAI, Path]) -> None:
    fake, cert = tls_upstream
    pool = HttpPool(tls_context=ssl.create_default_context(cafile=str(cert)))
    url = fake.base_url.replace("http://", "https://") + "/chat/completions"
    for _ in range(2):
        response = pool.post(url, BODY, {"Content-Type": "application/json"}, time.monotonic() + 5)
        assert response.status == 200 and b"over tls" in response.read_all(1 << 20)
        response.close()
    assert len(fake.connections) == 1 and pool.idle_count(url) == 1


def test_https_with_an_untrusted_certificate_is_refused_before_sending(tls_upstream: tuple[FakeOpenAI, Path]) -> None:
    fake, _ = tls_upstream
    url = fake.base_url.replace("http://", "https://") + "/chat/completions"
    with pytest.raises(TransportError) as caught:
        HttpPool().post(url, BODY, {"Content-Type": "application/json"}, time.monotonic() + 5)
    assert caught.value.kind == "unreachable" and fake.requests == []
