"""Reading PAN and expiry from an EMV contact card, the way a terminal does before any transaction.

The kiosk only needs to know which bank card the patient inserted (to bind it or to prefill a payment), so
the read stops after the records: no offline authentication, no cryptogram. Every card answer is parsed as
untrusted: a missing tag or a broken length becomes a `CardDataError`.
"""
from __future__ import annotations

import calendar
import logging
import os
from dataclasses import dataclass
from datetime import date

from drivers.pcsc import tlv
from drivers.pcsc.apdu import SW_FILE_NOT_FOUND, Transmit, command, exchange, read_record, select_by_name
from drivers.pcsc.cards import (
    KNOWN_AIDS, PPSE_NAME, TAG_AFL, TAG_AID, TAG_APP_TEMPLATE, TAG_EXPIRY, TAG_GPO_FORMAT1, TAG_GPO_FORMAT2,
    TAG_HOLDER, TAG_LABEL, TAG_PAN, TAG_PDOL, TAG_PRIORITY, TAG_TRACK2, BankCard, luhn_valid,
)
from drivers.pcsc.errors import CardDataError, CardRefusedError

log = logging.getLogger(__name__)

MAX_RECORDS = 64  # an AFL names a handful; more is garbage that would keep the card busy for minutes


@dataclass(frozen=True)
class Application:
    aid: bytes
    label: str = ""
    priority: int = 0  # 1 is the highest, 0 means "no priority given" and sorts last


def parse_tlv(data: bytes, what: str) -> list[tlv.Tlv]:
    try:
        return tlv.parse(data)
    except tlv.TlvError as exc:
        raise CardDataError(f"{what}: {exc}") from exc


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace").strip()


def parse_ppse(fci: bytes) -> list[Application]:
    """The directory entries of a PPSE answer, best first."""
    apps = []
    for entry in tlv.find_all(parse_tlv(fci, "PPSE"), TAG_APP_TEMPLATE):
        aid = entry.find(TAG_AID)
        if aid is None or not 5 <= len(aid.value) <= 16:
            continue
        label = entry.find(TAG_LABEL)
        prio = entry.find(TAG_PRIORITY)
        priority = prio.value[0] & 0x0F if prio is not None and prio.value else 0
        apps.append(Application(aid.value, _text(label.value) if label else "", priority))
    return sorted(apps, key=lambda a: (a.priority == 0, a.priority))


# Values a real terminal would put in the PDOL, where a zero might make a picky card refuse GPO.
def _pdol_defaults(today: date) -> dict[int, bytes]:
    return {
        0x9F1A: bytes.fromhex("0156"),  # terminal country code: China
        0x5F2A: bytes.fromhex("0156"),  # transaction currency: CNY
        0x9A: bytes.fromhex(today.strftime("%y%m%d")),  # transaction date, BCD
        0x9C: b"\x00",  # transaction type: goods and services
        0x9F37: os.urandom(4),  # unpredictable number
        0x9F35: b"\x14",  # terminal type: attended, offline with online capability... close enough for a read
    }


def build_pdol_data(pdol: bytes, today: date | None = None) -> bytes:
    """One value per requested tag, at exactly the requested length (zeros where we have no default)."""
    try:
        entries = tlv.parse_dol(pdol)
    except tlv.TlvError as exc:
        raise CardDataError(f"PDOL: {exc}") from exc
    defaults = _pdol_defaults(today or date.today())
    out = b""
    for tag, length in entries:
        value = defaults.get(tag, b"")
        out += value[:length].rjust(length, b"\x00")
    if len(out) > 252:  # 83 L + data must fit in one short APDU
        raise CardDataError(f"PDOL asks for {len(out)} bytes, more than one command can carry")
    return out


def parse_gpo(data: bytes) -> tuple[bytes, bytes]:
    """AIP and AFL from a GET PROCESSING OPTIONS answer in format 1 (tag 80) or format 2 (tag 77)."""
    items = parse_tlv(data, "GET PROCESSING OPTIONS")
    if items and items[0].tag == TAG_GPO_FORMAT1:
        value = items[0].value
        if len(value) < 2:
            raise CardDataError("GET PROCESSING OPTIONS format 1 answer is too short")
        return value[:2], value[2:]
    if items and items[0].tag == TAG_GPO_FORMAT2:
        aip, afl = items[0].find(0x82), items[0].find(TAG_AFL)
        if afl is None:
            raise CardDataError("GET PROCESSING OPTIONS answer has no AFL (94)")
        return (aip.value if aip else b""), afl.value
    raise CardDataError("GET PROCESSING OPTIONS answer is neither format 1 (80) nor format 2 (77)")


def parse_afl(afl: bytes) -> list[tuple[int, int]]:
    """(SFI, record) pairs in the order the AFL names them."""
    if len(afl) % 4:
        raise CardDataError(f"AFL of {len(afl)} bytes is not a multiple of 4")
    out: list[tuple[int, int]] = []
    for i in range(0, len(afl), 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        if not 1 <= sfi <= 30 or first == 0 or last < first:
            raise CardDataError(f"AFL entry {afl[i:i + 4].hex().upper()} is not valid")
        out.extend((sfi, rec) for rec in range(first, last + 1))
    if len(out) > MAX_RECORDS:
        raise CardDataError(f"AFL names {len(out)} records")
    return out


def _digits(value: bytes) -> str:
    return value.hex().upper().rstrip("F")


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _expiry(value: bytes) -> date:
    text = value.hex()
    try:
        year, month, day = 2000 + int(text[0:2]), int(text[2:4]), int(text[4:6])
        return date(year, month, day)
    except ValueError as exc:
        raise CardDataError("expiry date (5F24) is not a date") from exc


def card_from_records(items: list[tlv.Tlv], app: Application) -> BankCard:
    """PAN and expiry from 5A/5F24, else from the track 2 equivalent (57)."""
    pan_tag, exp_tag, track2 = tlv.find(items, TAG_PAN), tlv.find(items, TAG_EXPIRY), tlv.find(items, TAG_TRACK2)
    holder_tag = tlv.find(items, TAG_HOLDER)
    holder = holder_tag.value.decode("ascii", "replace").strip() if holder_tag else ""
    if pan_tag is not None and exp_tag is not None and len(exp_tag.value) == 3:
        pan, expiry, source = _digits(pan_tag.value), _expiry(exp_tag.value), "records"
    elif track2 is not None:
        digits = _digits(track2.value)
        pan, sep, rest = digits.partition("D")
        if not sep or len(rest) < 4 or not rest[:4].isdigit():
            raise CardDataError("track 2 equivalent (57) has no separator or expiry")
        yy, mm = int(rest[:2]), int(rest[2:4])
        if not 1 <= mm <= 12:
            raise CardDataError("track 2 expiry month is not a month")
        expiry, source = _month_end(2000 + yy, mm), "track2"
    else:
        raise CardDataError("the records hold neither PAN and expiry (5A, 5F24) nor track 2 (57)")
    if not 12 <= len(pan) <= 19 or not luhn_valid(pan):
        raise CardDataError(f"PAN of {len(pan)} characters fails the Luhn check")  # never the PAN itself
    return BankCard(pan=pan, expiry=expiry, aid=app.aid, label=app.label, holder=holder, source=source)


def _select_application(transmit: Transmit) -> tuple[Application, bytes]:
    """Select the best application the card offers; returns it with its FCI."""
    ppse = exchange(transmit, select_by_name(PPSE_NAME))
    if ppse.ok:
        candidates = parse_ppse(ppse.data)
        if not candidates:
            raise CardDataError("PPSE lists no application")
    elif ppse.sw == SW_FILE_NOT_FOUND:
        candidates = [Application(aid) for aid in KNOWN_AIDS]
    else:
        raise CardRefusedError(f"SELECT PPSE: card answered SW {ppse.sw:04X}", sw=ppse.sw)
    for app in candidates:
        resp = exchange(transmit, select_by_name(app.aid))
        if resp.ok:
            fci = parse_tlv(resp.data, "application FCI")
            label = tlv.find(fci, TAG_LABEL)
            if label is not None and not app.label:
                app = Application(app.aid, _text(label.value), app.priority)
            pdol = tlv.find(fci, TAG_PDOL)
            return app, (pdol.value if pdol else b"")
        log.debug("application %s not selectable: SW %04X", app.aid.hex().upper(), resp.sw)
    raise CardRefusedError("no payment application on the card could be selected")


def read_bank_card(transmit: Transmit, today: date | None = None) -> BankCard:
    app, pdol = _select_application(transmit)
    pdol_data = build_pdol_data(pdol, today)
    gpo = exchange(transmit, command(0x80, 0xA8, 0x00, 0x00, tlv.encode(0x83, pdol_data)))
    _aip, afl = parse_gpo(gpo.expect_ok("GET PROCESSING OPTIONS"))
    items: list[tlv.Tlv] = []
    for sfi, record in parse_afl(afl):
        resp = exchange(transmit, read_record(sfi, record))
        if not resp.ok:
            log.debug("record %d of SFI %d unreadable: SW %04X", record, sfi, resp.sw)
            continue
        items.extend(parse_tlv(resp.data, f"record {record} of SFI {sfi}"))
    card = card_from_records(items, app)
    log.info("bank card read: %s", card)
    return card
