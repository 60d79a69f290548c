"""What the kiosk reads from a card, and where on the card it lives.

The file layout here is shared by the driver and by the virtual card (`vcard`), so the emulator cannot drift
from what the driver expects. The data classes mask their sensitive fields in `repr` and `str`: a card object
that reaches a log line or a traceback must not leak a PAN or an ID number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from drivers.idcard.idnumber import mask_id_number, mask_name

# --- EMV -------------------------------------------------------------------------------------------------
PPSE_NAME = b"2PAY.SYS.DDF01"
# Tried in this order when a card has no PPSE (older contact-only cards): UnionPay debit/credit/quasi-credit,
# Visa, Mastercard.
KNOWN_AIDS: tuple[bytes, ...] = tuple(bytes.fromhex(h) for h in (
    "A000000333010101", "A000000333010102", "A000000333010103", "A0000000031010", "A0000000041010"))

TAG_FCI = 0x6F
TAG_DF_NAME = 0x84
TAG_APP_TEMPLATE = 0x61
TAG_AID = 0x4F
TAG_LABEL = 0x50
TAG_PRIORITY = 0x87
TAG_PDOL = 0x9F38
TAG_GPO_FORMAT1 = 0x80
TAG_GPO_FORMAT2 = 0x77
TAG_AIP = 0x82
TAG_AFL = 0x94
TAG_PAN = 0x5A
TAG_EXPIRY = 0x5F24
TAG_TRACK2 = 0x57
TAG_HOLDER = 0x5F20

# --- social-security card (the kiosk's layout of the MoHRSS application) ----------------------------------
SOCIAL_SECURITY_AID = bytes.fromhex("A000000632") + b"SSSE"
SSC_SFI_CARD = 5  # transparent file: issuing region (01) and card number (07)
SSC_SFI_HOLDER = 6  # record file: record 1 the holder's ID number (08), record 2 the name (09, GB18030)
SSC_TAG_REGION = 0x01
SSC_TAG_CARD_NUMBER = 0x07
SSC_TAG_ID_NUMBER = 0x08
SSC_TAG_NAME = 0x09


def luhn_valid(digits: str) -> bool:
    if not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits, as PCI DSS allows showing; short garbage is masked entirely."""
    if len(pan) < 13:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


@dataclass(frozen=True)
class BankCard:
    pan: str = field(repr=False)
    expiry: date  # the card is valid through this day (5F24, or the month's last day from track 2)
    aid: bytes = b""
    label: str = ""
    holder: str = field(default="", repr=False)  # 5F20 when the card has it; often blank on debit cards
    source: str = "records"  # "records" (5A/5F24) or "track2" (57), for diagnostics

    @property
    def masked_pan(self) -> str:
        return mask_pan(self.pan)

    @property
    def expiry_text(self) -> str:
        """MM/YY as printed on the card face."""
        return self.expiry.strftime("%m/%y")

    def expired(self, today: date | None = None) -> bool:
        return (today or date.today()) > self.expiry

    def to_dict(self, masked: bool = True) -> dict[str, Any]:
        """JSON-ready fields for diagnostics, like the ID-card classes; masked unless a technician asks."""
        return {"card_type": "bank", "pan": self.masked_pan if masked else self.pan,
                "expiry": self.expiry_text, "aid": self.aid.hex().upper(), "label": self.label,
                "holder": (self.holder[:1] + "***" if self.holder else "") if masked else self.holder,
                "source": self.source}

    def __repr__(self) -> str:
        return (f"BankCard(pan={self.masked_pan!r}, expiry={self.expiry_text!r}, aid={self.aid.hex().upper()!r}, "
                f"label={self.label!r}, source={self.source!r})")

    __str__ = __repr__


@dataclass(frozen=True)
class SocialSecurityCard:
    card_number: str
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    issued_region: str = ""

    @property
    def masked_id_number(self) -> str:
        return mask_id_number(self.id_number)

    def to_dict(self, masked: bool = True) -> dict[str, Any]:
        """JSON-ready fields for diagnostics, like the ID-card classes; masked unless a technician asks."""
        return {"card_type": "social_security", "card_number": self.card_number,
                "name": mask_name(self.name) if masked else self.name,
                "id_number": self.masked_id_number if masked else self.id_number,
                "issued_region": self.issued_region}

    def __repr__(self) -> str:
        return (f"SocialSecurityCard(card_number={self.card_number!r}, id_number={self.masked_id_number!r}, "
                f"issued_region={self.issued_region!r})")

    __str__ = __repr__
