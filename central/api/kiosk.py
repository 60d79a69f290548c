"""Kiosk API, ``/api/v1/kiosk``: hospital, patient identification, schedule, registration orders."""
from __future__ import annotations

import logging
import secrets
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, model_validator

from central import appointments, bill_orders, orders
from central.api.auth import Svc, Terminal
from central.api.errors import ApiError
from central.api.views import age_on, bill_view, department_view, doctor_view, order_view, slot_view
from central.his.latin_names import latin_name_matches
from central.payments.channel import ChannelError, ChannelUnavailable, SignatureError
from central.payments.insurance import CERT_E_VOUCHER, CERT_SOCIAL_SECURITY_CARD
from central.services import Services
from drivers.idcard.idnumber import birth_date, is_valid, mask_latin_name, mask_name

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/kiosk", tags=["kiosk"])

DateQuery = Annotated[date | None, Query(description="YYYY-MM-DD in the hospital's timezone; default today")]


ID_NUMBER_PATTERN = r"^(\d{17}[\dXx]|[A-Z]{3}\d{12})$"
IdentifyMethod = Literal["id_card", "e_health_code", "visit_code", "insurance_voucher", "social_security_card",
                         "document_number", "visit_card"]
#: The field each identification method needs besides ``method``.
_NEEDS: dict[str, tuple[str, ...]] = {
    "id_card": ("id_number", "name"), "e_health_code": ("code",), "visit_code": ("code",),
    "insurance_voucher": ("code",), "social_security_card": ("code",), "document_number": ("document_number", "name"),
    "visit_card": ("code",),  # a physical visit card (就诊卡) bound at the kiosk (central.api.cards)
}


class IdentifyRequest(BaseModel):
    """Who is at the kiosk (K1). ``id_card``: the ID card's number and name. ``e_health_code``, ``visit_code``,
    ``insurance_voucher``: a scanned code; ``social_security_card``: the card number read from the chip.
    ``document_number``: a passport or HK/Macao/Taiwan travel permit number typed at the kiosk, with the name."""

    method: IdentifyMethod
    # 18 characters: resident ID card and HK/Macao/Taiwan residence permit; 3 letters + 12 digits:
    # foreigner's permanent residence card (2017 version).
    id_number: str | None = Field(default=None, pattern=ID_NUMBER_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=50)
    code: str | None = Field(default=None, min_length=6, max_length=128, pattern=r"^[0-9A-Za-z_:+/=\-]+$")
    document_number: str | None = Field(default=None, min_length=5, max_length=20, pattern=r"^[0-9A-Za-z]+$")

    @model_validator(mode="after")
    def _fields_for_method(self) -> IdentifyRequest:
        missing = [f for f in _NEEDS[self.method] if not getattr(self, f)]
        if missing:
            raise ValueError(f"method {self.method} needs {', '.join(missing)}")
        return self

    def __repr__(self) -> str:  # identifiers and codes never reach a log line
        return f"IdentifyRequest(method={self.method})"


class NewPatientRequest(BaseModel):
    """建档 (K2) from a resident ID card as the kiosk read it, with the phone number the patient typed."""

    id_number: str = Field(pattern=r"^\d{17}[\dXx]$")
    name: str = Field(min_length=1, max_length=50)
    gender: Literal["男", "女"]
    birth: date
    phone: str = Field(pattern=r"^1[3-9]\d{9}$")

    def __repr__(self) -> str:
        return "NewPatientRequest(...)"


class RegistrationRequest(BaseModel):
    patient_id: str = Field(min_length=1, max_length=32)
    slot_id: int
    idempotency_key: str = Field(min_length=8, max_length=128)


class CardRequest(BaseModel):
    """A bank card as the kiosk read it; the PIN exists only as the PIN pad's encrypted block."""

    pan: str = Field(pattern=r"^\d{12,19}$")
    expiry: str = Field(pattern=r"^\d{2}(0[1-9]|1[0-2])$", description="YYMM")
    pin_block: str = Field(pattern=r"^([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$")
    pin_algorithm: Literal["sm4", "3des"] = "sm4"
    track2: str | None = Field(default=None, max_length=40, pattern=r"^[0-9=D]+$")

    def __repr__(self) -> str:  # a card never reaches a log line whole
        return f"CardRequest(pan=****{self.pan[-4:]})"


class PayRequest(BaseModel):
    channel: Literal["wechat_native", "alipay_native", "wechat_code", "alipay_code", "unionpay_card", "aggregate"]
    # The code on the patient's phone, scanned at the kiosk (for the *_code methods only).
    auth_code: str | None = Field(default=None, pattern=r"^\d{16,24}$")
    card: CardRequest | None = None  # for unionpay_card only
    idempotency_key: str = Field(min_length=8, max_length=128)


class BillOrderRequest(BaseModel):
    patient_id: str = Field(min_length=1, max_length=32)
    bill_no: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$")
    idempotency_key: str = Field(min_length=8, max_length=128)


class RefundItemsRequest(BaseModel):
    item_ids: list[str] = Field(min_length=1, max_length=100)


class InsuranceRequest(BaseModel):
    credential: Literal["e_voucher", "social_security_card"]
    # The e-voucher's scanned code, or the social-security card number read from the card.
    number: str = Field(min_length=6, max_length=128, pattern=r"^[0-9A-Za-z_\-]+$")


def _view(svc: Services, order: Any) -> dict[str, Any]:
    return order_view(order, svc.settings.tz, aggregate_url=orders.aggregate_url(svc, order.order_no))


def _day(svc: Services, day: date | None) -> date:
    return day or svc.today()


def _department_or_404(svc: Services, dept: str, day: date) -> Any:
    department = svc.his.get_department(dept, day, svc.now())
    if department is None:
        raise ApiError(404, "DEPARTMENT_NOT_FOUND", "未找到该科室", "No such department")
    return department


@router.get("/hospital")
def hospital(svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    info = svc.his.hospital()
    return {"name": info.name, "name_en": info.name_en, "address": info.address, "phone": info.phone,
            "date": svc.today().isoformat()}


NOT_FOUND = ("未找到您的就诊档案，可用身份证自助建档或到人工窗口建档",
             "No patient file found; create one here with your ID card or at a service counter")


def _not_found(svc: Services, by_id_card: bool = False) -> ApiError:
    """``can_create``: this patient may make a file at the kiosk now (a resident ID card was read and the HIS
    takes new files from kiosks)."""
    return ApiError(404, "PATIENT_NOT_FOUND", NOT_FOUND[0], NOT_FOUND[1],
                    can_create=bool(by_id_card and getattr(svc.his, "creates_patients", False)))


def _patient_view(svc: Services, patient: Any) -> dict[str, Any]:
    masked = mask_name(patient.name) if not patient.name.isascii() else mask_latin_name(patient.name)
    return {"patient_id": patient.patient_id, "name_masked": masked, "gender": patient.gender,
            "age": age_on(patient.birth, svc.today())}


def _same_name(on_file: str, given: str) -> bool:
    """Names typed or read compare without case and spacing (passports print Latin names in capitals)."""
    def norm(text: str) -> str:
        return "".join(text.split()).upper()
    return norm(on_file) == norm(given)


def _insured_id_number(svc: Services, cert_type: str, code: str) -> str:
    """The ID number of the person an insurance credential belongs to, from the insurance platform (1101)."""
    channel: Any = svc.channels.get("insurance")
    if channel is None:
        raise ApiError(409, "CHANNEL_NOT_SUPPORTED", "本院暂未开通医保凭证识别", "Insurance credentials are not accepted here")
    try:
        person = channel.identify(cert_type, code, f"ID{svc.now():%Y%m%d%H%M%S}{secrets.randbelow(10**6):06d}")
    except ValueError:
        raise ApiError(409, "INSURANCE_CREDENTIAL_INVALID", "医保凭证无效，请重新出示",
                       "This insurance credential is not valid; please show it again") from None
    except (ChannelUnavailable, SignatureError):
        raise ApiError(503, "PAYMENT_CHANNEL_UNAVAILABLE", "医保系统暂时无响应，请稍候或使用身份证",
                       "The insurance platform is not answering; please wait or use your ID card") from None
    except ChannelError:
        raise ApiError(409, "INSURANCE_REFUSED", "医保凭证暂不能识别，请使用身份证",
                       "The insurance credential could not be read; please use your ID card") from None
    return str(person.id_number)


@router.post("/patients/identify")
def identify(body: IdentifyRequest, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    """K1: the patient file, by any of the kiosk's credentials. An e-health code held by a phone account that
    carries several family members' cards answers ``{"patients": [...]}`` for the patient to choose from."""
    his = svc.his
    if body.method in ("id_card", "document_number"):
        number = (body.id_number if body.method == "id_card" else body.document_number) or ""
        patient = his.find_patient_by_id_number(number.strip().upper())
        if patient is None:
            raise _not_found(svc, body.method == "id_card")
        typed = body.name or ""
        # A document's name is typed in Latin letters: as spelt there, or the Pinyin of a Chinese name on file.
        if not (_same_name(patient.name, typed)
                or body.method == "document_number" and latin_name_matches(patient.name, typed)):
            raise ApiError(409, "NAME_MISMATCH", "姓名与档案不符，请到人工窗口核对",
                           "The name does not match the patient file; please check at a service counter")
        return _patient_view(svc, patient)
    code = (body.code or "").strip()
    if body.method == "visit_code":
        patient = his.find_patient_by_visit_code(code)
    elif body.method == "e_health_code":
        found = his.find_patients_by_ehealth_code(code)
        if len(found) > 1:
            return {"patients": [_patient_view(svc, p) for p in found]}
        patient = found[0] if found else None
    elif body.method == "visit_card":
        patient = his.find_patient_by_visit_card(code)
    else:
        cert = CERT_E_VOUCHER if body.method == "insurance_voucher" else CERT_SOCIAL_SECURITY_CARD
        patient = his.find_patient_by_id_number(_insured_id_number(svc, cert, code).upper())
    if patient is None:
        raise _not_found(svc)
    return _patient_view(svc, patient)


@router.post("/patients", status_code=201)
def create_patient(body: NewPatientRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """K2 建档: a patient file from an ID card read at the kiosk. The same ID number again gives the file it
    already has (a retried request, or a patient who did not know they had one), if the name matches."""
    number = body.id_number.upper()
    male = number[16:17].isdigit() and int(number[16]) % 2 == 1
    if not is_valid(number) or birth_date(number) != body.birth or (body.gender == "男") != male:
        raise ApiError(422, "ID_CARD_INVALID", "身份证信息无法核验，请到人工窗口建档",
                       "The ID card could not be verified; please register at a service counter")
    try:
        patient, created = svc.his.create_patient(body.name.strip(), number, body.gender, body.birth, body.phone)
    except NotImplementedError:
        raise ApiError(409, "NOT_SUPPORTED", "本院暂不支持自助建档，请到人工窗口办理",
                       "Patient files are created at a service counter here") from None
    if not created and not _same_name(patient.name, body.name):
        raise ApiError(409, "NAME_MISMATCH", "姓名与档案不符，请到人工窗口核对",
                       "The name does not match the patient file; please check at a service counter")
    log.info("patient file %s by terminal %s (%s)", patient.patient_id, terminal, "new" if created else "existing")
    return {**_patient_view(svc, patient), "created": created}


@router.get("/departments")
def departments(svc: Svc, _terminal: Terminal, date: DateQuery = None) -> dict[str, Any]:
    day = _day(svc, date)
    return {"date": day.isoformat(),
            "departments": [department_view(d) for d in svc.his.list_departments(day, svc.now())]}


@router.get("/departments/{dept}/doctors")
def doctors(dept: str, svc: Svc, _terminal: Terminal, date: DateQuery = None) -> dict[str, Any]:
    day = _day(svc, date)
    department = _department_or_404(svc, dept, day)
    return {"date": day.isoformat(), "department": department_view(department),
            "doctors": [doctor_view(d) for d in svc.his.list_doctors(dept, day, svc.now())]}


@router.get("/departments/{dept}/doctors/{doctor}/slots")
def slots(dept: str, doctor: str, svc: Svc, _terminal: Terminal, date: DateQuery = None) -> dict[str, Any]:
    day = _day(svc, date)
    _department_or_404(svc, dept, day)
    if not any(d.code == doctor for d in svc.his.list_doctors(dept, day, svc.now())):
        raise ApiError(404, "DOCTOR_NOT_FOUND", "该科室没有这位医生", "No such doctor in this department")
    return {"date": day.isoformat(),
            "slots": [slot_view(s) for s in svc.his.list_free_slots(dept, doctor, day, svc.now())]}


@router.post("/registrations", status_code=201)
def create_registration(body: RegistrationRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    return _view(svc, appointments.book(svc, terminal, body.patient_id, body.slot_id, body.idempotency_key))


@router.get("/registrations/by-key/{idempotency_key}")
def registration_by_key(idempotency_key: str, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """The order a create request with this key made, if it made one: for a kiosk that crashed before it
    heard the answer. Never creates anything."""
    order = orders.find_by_key(svc, terminal, idempotency_key)
    if order is None:
        raise ApiError(404, "NOT_FOUND", "未找到该订单", "No order was made with this key")
    return _view(svc, order)


@router.post("/orders/{order_no}/pay")
def pay(order_no: str, body: PayRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    card = None if body.card is None else orders.CardData(body.card.pan, body.card.expiry, body.card.pin_block,
                                                          body.card.pin_algorithm, body.card.track2)
    order = orders.start_payment(svc, terminal, order_no, body.channel, body.idempotency_key,
                                 auth_code=body.auth_code, card=card)
    return _view(svc, order)


@router.get("/orders/{order_no}")
def get_order(order_no: str, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    return _view(svc, orders.refresh_order(svc, terminal, order_no))


@router.post("/orders/{order_no}/refund")
def refund(order_no: str, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """退号退费: give back a registration not yet used; its fee returns along the original trade."""
    return _view(svc, orders.request_refund(svc, terminal, order_no))


@router.post("/orders/{order_no}/cancel")
def cancel(order_no: str, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    return _view(svc, orders.cancel_order(svc, terminal, order_no))


@router.post("/orders/{order_no}/insurance")
def insurance(order_no: str, body: InsuranceRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """医保: how this bill splits between the fund, the personal account and the patient. Nothing is charged
    until the patient pays the self-pay part (or confirms with `pay` when insurance covers it all)."""
    cert_type = CERT_E_VOUCHER if body.credential == "e_voucher" else CERT_SOCIAL_SECURITY_CARD
    return _view(svc, orders.presettle_insurance(svc, terminal, order_no, cert_type, body.number))


@router.post("/card/sign-on")
def card_sign_on(svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """签到: a fresh PIN working key for this kiosk's PIN pad, encrypted under the pad's master key (only the
    pad can use it), with its check value."""
    channel = svc.channels.get("unionpay")
    if channel is None:
        raise ApiError(409, "CHANNEL_NOT_SUPPORTED", "本院暂未开通银行卡支付", "Bank cards are not accepted here")
    try:
        key = channel.sign_on(terminal)  # type: ignore[attr-defined]
    except ChannelUnavailable:
        raise ApiError(503, "PAYMENT_CHANNEL_UNAVAILABLE", "银行系统暂时无响应，请稍候",
                       "The bank is not answering; please wait") from None
    except ChannelError as exc:
        raise ApiError(409, "SIGN_ON_REFUSED", "银行卡签到失败，请联系工作人员",
                       "Bank-card sign-on failed; please call staff", response_code=exc.code) from None
    return key.to_dict()


@router.get("/patients/{patient_id}/bills")
def bills(patient_id: str, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    """门诊缴费: the patient's unpaid bills with their items."""
    if svc.his.get_patient(patient_id) is None:
        raise ApiError(404, "PATIENT_NOT_FOUND", "未找到您的就诊档案", "No patient file found")
    return {"bills": [bill_view(b, svc.settings.tz) for b in svc.his.list_bills(patient_id)]}


@router.post("/bills", status_code=201)
def create_bill_order(body: BillOrderRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    order, _created = bill_orders.create_bill_order(svc, terminal, body.patient_id, body.bill_no,
                                                    body.idempotency_key)
    return _view(svc, order)


@router.post("/orders/{order_no}/refund-items")
def refund_items(order_no: str, body: RefundItemsRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """退费: items not yet dispensed or performed go back along the original routes (insurance part too);
    executed items are refused with REFUND_AT_COUNTER naming them."""
    return _view(svc, bill_orders.refund_items(svc, terminal, order_no, body.item_ids))


@router.get("/patients/{patient_id}/orders")
def patient_orders(patient_id: str, svc: Svc, terminal: Terminal,
                   kind: Annotated[Literal["bill"], Query(description="only bill orders are listed")] = "bill"
                   ) -> dict[str, Any]:
    """退费: today's (hospital time) paid bill orders this terminal took for the patient, newest first, with
    their items and each item's status, so the kiosk can offer the items still refundable. Only this terminal's
    orders: an order belongs to the terminal that took it (`orders.get_order`), so a bill paid elsewhere is
    refunded at the counter."""
    from datetime import datetime, time as day_time

    from sqlalchemy import select

    from central.models import Order, OrderStatus

    if svc.his.get_patient(patient_id) is None:
        raise ApiError(404, "PATIENT_NOT_FOUND", "未找到您的就诊档案", "No patient file found")
    since = datetime.combine(svc.today(), day_time(0), tzinfo=svc.settings.tz)
    with svc.sessions() as session:
        found = list(session.scalars(select(Order).where(
            Order.patient_id == patient_id, Order.kind == kind, Order.terminal_id == terminal,
            Order.status.in_([OrderStatus.FULFILLED, OrderStatus.REFUNDED]), Order.created_at >= since)
            .order_by(Order.created_at.desc(), Order.id.desc())))
    return {"orders": [_view(svc, order) for order in found]}
