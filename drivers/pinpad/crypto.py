"""The two ciphers a pad may use for PINs: SM4 (GB/T 32907, required for 国密 terminals) and 3DES.

ECB on a single block is what PIN encryption uses; it is not a mode for general data. Only the pad and the
host security module call these; the kiosk's driver never needs a key.
"""
from __future__ import annotations

from enum import Enum

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from drivers.pinpad.pinblock import format0, format0_wide

KCV_LENGTH = 4


class Algorithm(str, Enum):
    SM4 = "sm4"
    TDES = "3des"

    @property
    def code(self) -> int:
        return {Algorithm.SM4: 0x01, Algorithm.TDES: 0x02}[self]

    @classmethod
    def from_code(cls, code: int) -> "Algorithm":
        for alg in cls:
            if alg.code == code:
                return alg
        raise ValueError(f"unknown algorithm code 0x{code:02X}")

    @property
    def block_size(self) -> int:
        return 16 if self is Algorithm.SM4 else 8


def _cipher(alg: Algorithm, key: bytes) -> Cipher:  # type: ignore[type-arg]
    if len(key) != 16 and not (alg is Algorithm.TDES and len(key) == 24):
        raise ValueError(f"{alg.value} keys are 16 bytes" + (" (or 24)" if alg is Algorithm.TDES else ""))
    if alg is Algorithm.SM4:
        return Cipher(algorithms.SM4(key), modes.ECB())
    # A double-length key K1 K2 is the triple-length key K1 K2 K1; cryptography wants the latter spelled out.
    return Cipher(TripleDES(key if len(key) == 24 else key + key[:8]), modes.ECB())


def encrypt(alg: Algorithm, key: bytes, data: bytes) -> bytes:
    enc = _cipher(alg, key).encryptor()
    return enc.update(data) + enc.finalize()


def decrypt(alg: Algorithm, key: bytes, data: bytes) -> bytes:
    dec = _cipher(alg, key).decryptor()
    return dec.update(data) + dec.finalize()


def kcv(alg: Algorithm, key: bytes) -> bytes:
    """Key check value: the first bytes of a zero block encrypted under the key; proves the key, reveals nothing."""
    return encrypt(alg, key, bytes(alg.block_size))[:KCV_LENGTH]


def clear_pin_block(alg: Algorithm, pin: str, pan: str) -> bytes:
    """The clear block sized for the cipher: 16-byte wide form for SM4, classic 8-byte block for 3DES."""
    return format0_wide(pin, pan) if alg is Algorithm.SM4 else format0(pin, pan)
