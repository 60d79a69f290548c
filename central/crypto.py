"""Encryption of personal data at rest.

Names, ID numbers, phone numbers and addresses are stored AES-256-GCM encrypted, so a copied database file or
backup does not disclose patients. Looking a patient up by ID number still has to work, so the ID number also
gets a blind index: an HMAC-SHA256 under a second key, equal for equal numbers and useless without the key.

The key file is generated once in the data directory (mode 0600). Losing it loses the personal data: back it
up separately from the database, never beside it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

KEY_FILE = "field.key"
_VERSION = b"\x01"
_NONCE_BYTES = 12


class FieldCipher:
    """Encrypts single column values; the column's purpose is bound in as associated data so a ciphertext
    copied into another column (an ID number into the name) fails to decrypt instead of leaking."""

    def __init__(self, encryption_key: bytes, index_key: bytes):
        if len(encryption_key) != 32 or len(index_key) != 32:
            raise ValueError("field keys must be 32 bytes each")
        self._aead = AESGCM(encryption_key)
        self._index_key = index_key

    def __repr__(self) -> str:
        return "FieldCipher(<keys hidden>)"

    @classmethod
    def load_or_create(cls, data_dir: Path) -> FieldCipher:
        path = Path(data_dir) / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            material = secrets.token_bytes(64)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it first: use theirs
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(material.hex().encode("ascii"))
                    f.flush()
                    os.fsync(f.fileno())
        material = bytes.fromhex(path.read_text(encoding="ascii").strip())
        if len(material) != 64:
            raise ValueError(f"{KEY_FILE} is damaged: expected 64 bytes of key material")
        return cls(material[:32], material[32:])

    def encrypt(self, plaintext: str, purpose: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), purpose.encode("utf-8"))

    def decrypt(self, blob: bytes, purpose: str) -> str:
        if not blob or blob[:1] != _VERSION:
            raise ValueError("unknown field encryption format")
        nonce, ciphertext = blob[1:1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, purpose.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            raise ValueError(f"{purpose}: value does not decrypt with this key") from None

    def blind_index(self, value: str, purpose: str) -> str:
        normalised = value.strip().upper()
        return hmac.new(self._index_key, f"{purpose}\x00{normalised}".encode("utf-8"), hashlib.sha256).hexdigest()


def attach_cipher(engine: Any, cipher: FieldCipher) -> None:
    """Give one engine its key; the key travels with the engine's dialect, so two databases (two tests, two
    hospitals) in one process never share a key by accident."""
    engine.dialect.field_cipher = cipher


def cipher_of(dialect: Dialect) -> FieldCipher:
    cipher = getattr(dialect, "field_cipher", None)
    if cipher is None:
        raise RuntimeError("no field cipher attached to this engine; call crypto.attach_cipher first")
    return cipher


class EncryptedText(TypeDecorator[str]):
    """A text column stored as AES-GCM ciphertext."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, purpose: str):
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return cipher_of(dialect).encrypt(value, self.purpose)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return cipher_of(dialect).decrypt(bytes(value), self.purpose)
