"""Local secrets: the salt for subject hashes (shared by retention, legal holds and erasure).

The salt is created once, on first use, in `settings.secrets_dir/subject_hash_salt`
(mode 0600) and reused afterwards: every salted hash in the ledger depends on it, so it is
never regenerated while the file exists. Creation is race-safe (O_EXCL): if another
process created it first, its salt is read and used.
"""

from __future__ import annotations

import os
import secrets as _secrets
import time
from pathlib import Path

from ..settings import SIGNING_KEY_ENV

SALT_FILE = "subject_hash_salt"
SALT_BYTES = 32


def salt_path(settings) -> Path:
    return Path(settings.secrets_dir) / SALT_FILE


def load_or_create_salt(settings) -> bytes:
    path = salt_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # created by another process in between: use theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(_secrets.token_hex(SALT_BYTES) + "\n")
                f.flush()
                os.fsync(f.fileno())
    raw = ""
    for _ in range(50):  # the creator may not have written it yet
        raw = path.read_text().strip()
        if raw:
            break
        time.sleep(0.02)
    if not raw:
        raise RuntimeError(f"salt file {path} is empty; restore it from backup (salted hashes depend on it)")
    return bytes.fromhex(raw)


# -- certificate signing key (erasure certificates) ------------------------------------
DEV_SIGNING_KEY_FILE = "erasure_signing_key.pem"


def signing_key_path(settings) -> Path:
    """The Ed25519 key that signs certificates and checkpoints: $AISG_SIGNING_KEY_FILE, else the
    development key under secrets_dir. With `public_key_path`, the one place the key paths
    are resolved (signing, `aisg verify-certificate`, checkpoints, reports)."""
    from ..settings import signing_key_env

    configured, _ = signing_key_env()
    return Path(configured) if configured else Path(settings.secrets_dir) / DEV_SIGNING_KEY_FILE


def public_key_path(settings) -> Path:
    """Its public key: $AISG_SIGNING_PUBLIC_KEY_FILE, else `<signing key file>.pub.pem`."""
    from ..settings import signing_key_env

    _, configured_pub = signing_key_env()
    return Path(configured_pub) if configured_pub else Path(str(signing_key_path(settings)) + ".pub.pem")


def load_or_create_signing_key(settings):
    """(Ed25519 private key, path of its public key PEM) for signing erasure certificates.

    The key comes from the PEM file named by $AISG_SIGNING_KEY_FILE (a mounted secret in
    production; its public key is written next to it as `<file>.pub.pem` if missing, or
    taken from $AISG_SIGNING_PUBLIC_KEY_FILE). Without it, a *development* key is generated
    on first use under `settings.secrets_dir` (mode 0600) and its location is logged.
    """
    import logging

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ..settings import signing_key_env

    configured, _ = signing_key_env()
    path = signing_key_path(settings)
    if not path.exists():
        if configured:
            raise RuntimeError(f"{SIGNING_KEY_ENV}={configured} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            msg = f"generated a DEVELOPMENT signing key for erasure certificates at {path} (set {SIGNING_KEY_ENV} in production)"
            logging.getLogger(__name__).info(msg)
            print(msg)  # printed so that an operator sees where the development key is
    data = b""
    for _ in range(50):
        data = path.read_bytes()
        if data.strip():
            break
        time.sleep(0.02)
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"signing key {path} is not an Ed25519 private key")
    pub_path = public_key_path(settings)
    pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if pub_path.exists() and pub_path.read_bytes() != pub_pem:
        raise RuntimeError(f"public key {pub_path} does not belong to signing key {path}")
    if not pub_path.exists():
        tmp = pub_path.with_name(pub_path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(pub_pem)
        os.replace(tmp, pub_path)
    return key, pub_path
