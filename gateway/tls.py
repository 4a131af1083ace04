"""The TLS context of ``wss://``, built so that every mistake names the option and the file.

``ssl.SSLContext.load_cert_chain`` reports a certificate given as the key, a key that
does not match, or a missing file as ``[SSL] PEM lib (_ssl.c:3926)`` or a bare
``[Errno 2]``. The files are read and parsed here first (with ``cryptography``, already
a dependency through PyJWT) so each of those is one line an operator can act on.
"""

from __future__ import annotations

import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)

from gateway.config import ConfigError

__all__ = ["load_tls"]

_CERT = b"-----BEGIN CERTIFICATE-----"
_ENCRYPTED = (b"ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


def _read(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ConfigError(f"option {option!r}: file {path!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"option {option!r}: {path!r} is a directory, not a PEM file") from None
    except PermissionError:
        raise ConfigError(
            f"option {option!r}: file {path!r} is not readable (permission denied)"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"option {option!r}: cannot read {path!r}: {exc.strerror or exc}"
        ) from None


def _der(public: CertificatePublicKeyTypes | PublicKeyTypes) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_tls(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server ``SSLContext`` for ``certfile`` (chain, PEM) and ``keyfile`` (PEM key).

    Raises ``ConfigError`` naming the option and the file: missing, unreadable, not
    PEM, a certificate where the key should be, an encrypted key, or a key that does
    not belong to the certificate.
    """
    cert_pem = _read("certfile", certfile)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise ConfigError(
            f"option 'certfile': {certfile!r} holds no PEM certificate "
            "(expected -----BEGIN CERTIFICATE-----)"
        ) from None
    key_path = keyfile if keyfile is not None else certfile
    key_option = "keyfile" if keyfile is not None else "certfile"
    key_pem = _read(key_option, key_path)
    if any(marker in key_pem for marker in _ENCRYPTED):
        raise ConfigError(
            f"option {key_option!r}: the private key in {key_path!r} is encrypted; "
            "uvgate needs it unencrypted (openssl pkey -in KEY -out KEY.plain)"
        )
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        what = "a certificate, not a private key" if _CERT in key_pem else "no PEM private key"
        raise ConfigError(f"option {key_option!r}: {key_path!r} holds {what}") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and friends
        raise ConfigError(
            f"option {key_option!r}: cannot use the key in {key_path!r}: {exc}"
        ) from None
    if _der(key.public_key()) != _der(chain[0].public_key()):
        raise ConfigError(
            f"option 'keyfile': the key in {key_path!r} does not match the certificate "
            f"in {certfile!r} (the first certificate of the chain must be the server's)"
        )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        # The checks above make this unlikely (a file changed in between...).
        raise ConfigError(
            f"options 'certfile'/'keyfile': OpenSSL refused {certfile!r} / {key_path!r}: {exc}"
        ) from None
    return ctx
