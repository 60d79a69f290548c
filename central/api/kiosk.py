"""Kiosk API, ``/api/v1/kiosk``: hospital, patient identification, schedule, registration orders."""
from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from central import bill_orders, orders
from central.api.auth import Svc, Terminal
from central.api.errors import ApiError
from central.api.views import age_on, bill_view, department_view, doctor_view, order_view, slot_view
from central.payments.channel import ChannelError, ChannelUnavailable
from central.payments.insurance import CERT_E_VOUCHER, CERT_SOCIAL_SECURITY_CARD
from central.services import Services
from drivers.idcard.idnumber import mask_name

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/kiosk", tags=["kiosk"])

DateQuery = Annotated[date | None, Query(description="YYYY-MM-DD in the hospital's timezone; default today")]


class IdentifyRequest(BaseModel):
    method: Literal["id_card"]
    # 18 characters: resident ID card and HK/Macao/Taiwan residence permit; 3 letters + 12 digits:
    # foreigner's permanent residence card (2017 version).
    id_number: str = Field(pattern=r"^(\d{17}[\dXx]|[A-Z]{3}\d{12})$")
    name: str = Field(min_length=1, max_length=50)


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


@router.post("/patients/identify")
def identify(body: IdentifyRequest, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    patient = svc.his.find_patient_by_id_number(body.id_number.upper())
    if patient is None:
        raise ApiError(404, "PATIENT_NOT_FOUND", "未找到您的就诊档案，请到人工窗口建档",
                       "No patient file found; please register at a service counter")
    if patient.name != body.name.strip():
        raise ApiError(409, "NAME_MISMATCH", "姓名与档案不符，请到人工窗口核对",
                       "The name does not match the patient file; please check at a service counter")
    return {"patient_id": patient.patient_id, "name_masked": mask_name(patient.name), "gender": patient.gender,
            "age": age_on(patient.birth, svc.today())}


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
    order, _created = orders.create_registration_order(svc, terminal, body.patient_id, body.slot_id,
                                                       body.idempotency_key)
    return _view(svc, order)


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
