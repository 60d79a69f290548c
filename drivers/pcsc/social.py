"""Reading the social-security card's holder data (layout in `drivers.pcsc.cards`).

The kiosk uses this card to find the patient in the HIS, so a value that fails its own check (the ID
number's check digit) is refused here rather than sent off as a lookup for the wrong person.
"""
from __future__ import annotations

import logging

from drivers.idcard.idnumber import is_valid as id_number_valid
from drivers.pcsc import tlv
from drivers.pcsc.apdu import Transmit, exchange, read_binary_sfi, read_record, select_by_name
from drivers.pcsc.cards import (
    SOCIAL_SECURITY_AID, SSC_SFI_CARD, SSC_SFI_HOLDER, SSC_TAG_CARD_NUMBER, SSC_TAG_ID_NUMBER, SSC_TAG_NAME,
    SSC_TAG_REGION, SocialSecurityCard,
)
from drivers.pcsc.emv import parse_tlv
from drivers.pcsc.errors import CardDataError

log = logging.getLogger(__name__)


def _field(items: list[tlv.Tlv], tag: int, what: str) -> bytes:
    item = tlv.find(items, tag)
    if item is None:
        raise CardDataError(f"social-security card has no {what} (tag {tag:02X})")
    return item.value


def _ascii(value: bytes, what: str) -> str:
    text = value.rstrip(b"\x00 ").decode("ascii", "replace")
    if not text or not text.isprintable() or "\ufffd" in text:
        raise CardDataError(f"social-security {what} is not printable ASCII")
    return text


def read_social_security_card(transmit: Transmit) -> SocialSecurityCard:
    exchange(transmit, select_by_name(SOCIAL_SECURITY_AID)).expect_ok("SELECT social-security application")
    card_file = parse_tlv(exchange(transmit, read_binary_sfi(SSC_SFI_CARD)).expect_ok("READ BINARY card file"),
                          "card file")
    holder = parse_tlv(exchange(transmit, read_record(SSC_SFI_HOLDER, 1)).expect_ok("READ RECORD 1"),
                       "holder record 1")
    holder += parse_tlv(exchange(transmit, read_record(SSC_SFI_HOLDER, 2)).expect_ok("READ RECORD 2"),
                        "holder record 2")
    card_number = _ascii(_field(card_file, SSC_TAG_CARD_NUMBER, "card number"), "card number")
    region_tag = tlv.find(card_file, SSC_TAG_REGION)
    region = _ascii(region_tag.value, "region") if region_tag is not None and region_tag.value.strip(b"\x00") else ""
    id_number = _ascii(_field(holder, SSC_TAG_ID_NUMBER, "ID number"), "ID number").upper()
    if not id_number_valid(id_number):
        raise CardDataError("the ID number on the social-security card fails its check digit")
    try:
        name = _field(holder, SSC_TAG_NAME, "name").rstrip(b"\x00 ").decode("gb18030").strip()
    except UnicodeDecodeError as exc:
        raise CardDataError("the name on the social-security card is not GB18030 text") from exc
    if not name:
        raise CardDataError("the name on the social-security card is empty")
    card = SocialSecurityCard(card_number=card_number, name=name, id_number=id_number, issued_region=region)
    log.info("social-security card read: %s", card)
    return card
