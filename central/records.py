"""Printing (K8) and queries (K10): the patient's documents with their print counts, print-ready PDFs, completed
prints counted once, and the registration, payment, bill and queue history.

Who counts what: the HIS keeps each document's print count (the counter's reprints count there too), and the
hospital's rules (``HisAdapter.rules``) say how many copies a kiosk may print. The platform keeps a print record
per (terminal, idempotency key), so a kiosk that repeats its "printed" report after a lost answer counts once.
A print is counted only when the kiosk reports the job completed: a jammed printer costs the patient nothing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from central.document_pdf import document_pdf
from central.his.adapter import Document, DocumentNotFound, InvoiceLine, Patient, PrintLimitReached
from central.models import Order, OrderStatus
from central.orders import KIND_BILL, Conflict, NotFound
from central.records_models import PrintRecord
from central.services import Services

KINDS = ("lab", "imaging", "record", "invoice")


def patient_or_404(svc: Services, patient_id: str) -> Patient:
    patient = svc.his.get_patient(patient_id)
    if patient is None:
        raise NotFound("PATIENT_NOT_FOUND", "未找到您的就诊档案，请到人工窗口建档",
                       "No patient file found; please register at a service counter")
    return patient


def _local(svc: Services, moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(svc.settings.tz).isoformat(timespec="minutes")


def _reprint_message(svc: Services) -> tuple[str, str]:
    rules = svc.his.rules()
    return (f"自助打印次数已用完，如需再次打印请到{rules.reprint_place}办理",
            f"The kiosk print allowance is used up; for another copy please go to {rules.reprint_place_en}")


# --- documents -----------------------------------------------------------------------------------------------

def issue_invoices(svc: Services, patient_id: str, now: datetime) -> None:
    """An e-invoice for every paid order of the patient that has none yet (idempotent in the HIS per order).

    Only orders that ended paid and delivered (FULFILLED) get one, for what was kept: items given back
    (退费) before the invoice was issued are not on it."""
    with svc.sessions() as session:
        paid = list(session.scalars(select(Order).where(Order.patient_id == patient_id,
                                                        Order.status == OrderStatus.FULFILLED)))
    for order in paid:
        if order.kind == KIND_BILL:
            lines = [InvoiceLine(i.name, i.category, i.amount_fen) for i in order.items if i.status == "PAID"]
            title = f"门诊缴费 {order.dept_name}"
        else:
            lines = [InvoiceLine(f"挂号费 {order.dept_name} {order.doctor_name}", "挂号费", order.amount_fen)]
            title = f"挂号 {order.dept_name} {order.slot_date.isoformat()}"
        if sum(line.amount_fen for line in lines) > 0:
            svc.his.issue_invoice(order.order_no, patient_id, title, lines, now)


def document_view(svc: Services, document: Document, now: datetime) -> dict[str, Any]:
    limit = svc.his.rules().print_limit(document.kind)
    ready = document.ready_at <= now
    view: dict[str, Any] = {
        "kind": document.kind, "doc_no": document.doc_no, "title": document.title, "department": document.dept_name,
        "created_at": _local(svc, document.created_at), "ready": ready,
        "expected_at": None if ready else _local(svc, document.ready_at),
        "printed_count": document.printed_count, "print_limit": limit,
        "can_print": ready and document.printed_count < limit}
    if document.kind == "invoice":
        view["amount_fen"] = document.amount_fen
    if not ready:
        view["note"] = f"报告尚未出具，预计 {_local(svc, document.ready_at)} 可取"
        view["note_en"] = f"Not ready yet; expected at {_local(svc, document.ready_at)}"
    elif not view["can_print"]:
        view["note"], view["note_en"] = _reprint_message(svc)
    return view


def list_documents(svc: Services, patient_id: str, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or svc.now()
    patient_or_404(svc, patient_id)
    issue_invoices(svc, patient_id, now)
    return [document_view(svc, d, now) for d in svc.his.list_documents(patient_id)]


def _document_of(svc: Services, patient_id: str, kind: str, doc_no: str) -> Document:
    document = svc.his.get_document(kind, doc_no)
    if document is None or document.patient_id != patient_id:  # another patient's paper does not exist here
        raise NotFound("DOCUMENT_NOT_FOUND", "未找到该报告或票据", "No such document for this patient")
    return document


def _printable(svc: Services, document: Document, now: datetime) -> None:
    if document.ready_at > now:
        expected = _local(svc, document.ready_at)
        raise Conflict("REPORT_NOT_READY", f"报告尚未出具，预计 {expected} 可取",
                       f"The report is not ready yet; expected at {expected}", expected_at=expected)
    limit = svc.his.rules().print_limit(document.kind)
    if document.printed_count >= limit:
        message, message_en = _reprint_message(svc)
        raise Conflict("PRINT_LIMIT_REACHED", message, message_en, printed_count=document.printed_count,
                       print_limit=limit)


def document_for_print(svc: Services, patient_id: str, kind: str, doc_no: str,
                       now: datetime | None = None) -> tuple[Document, bytes]:
    """The print-ready PDF, refused for a report not ready yet or printed as often as a kiosk may."""
    now = now or svc.now()
    patient = patient_or_404(svc, patient_id)
    document = _document_of(svc, patient_id, kind, doc_no)
    _printable(svc, document, now)
    return document, document_pdf(document, patient, svc.his.hospital().name, svc.settings.tz)


@dataclass(frozen=True)
class PrintOutcome:
    kind: str
    doc_no: str
    printed_count: int
    print_limit: int
    repeated: bool  # this key was reported before: nothing more was counted


def record_printed(svc: Services, terminal_id: str, patient_id: str, kind: str, doc_no: str, idempotency_key: str,
                   now: datetime | None = None) -> PrintOutcome:
    """Count one completed print job. The same key again returns the first answer and counts nothing; a print
    beyond the limit is refused (the kiosk should not have printed it) and not counted."""
    now = now or svc.now()
    limit = svc.his.rules().print_limit(kind)
    with svc.sessions() as session:
        earlier = session.scalar(select(PrintRecord).where(PrintRecord.terminal_id == terminal_id,
                                                           PrintRecord.idempotency_key == idempotency_key))
    if earlier is not None:
        if (earlier.patient_id, earlier.kind, earlier.doc_no) != (patient_id, kind, doc_no):
            raise Conflict("IDEMPOTENCY_CONFLICT", "请求编号已用于另一份打印",
                           "This idempotency key was used for another print")
        if earlier.status == "RECORDED":
            return PrintOutcome(kind, doc_no, int(earlier.count_after or 0), limit, True)
    else:
        patient_or_404(svc, patient_id)
        document = _document_of(svc, patient_id, kind, doc_no)
        if document.ready_at > now:
            _printable(svc, document, now)
        try:
            with svc.sessions() as session, session.begin():
                session.add(PrintRecord(terminal_id=terminal_id, idempotency_key=idempotency_key,
                                        patient_id=patient_id, kind=kind, doc_no=doc_no, status="PENDING",
                                        created_at=now))
        except IntegrityError:  # the same report raced in twice; the one that got in decides
            return record_printed(svc, terminal_id, patient_id, kind, doc_no, idempotency_key, now)
    reference = hashlib.sha256(f"{terminal_id}\x00{idempotency_key}".encode("utf-8")).hexdigest()[:32]
    try:
        count = svc.his.record_print(kind, doc_no, reference, limit)
    except PrintLimitReached as exc:
        with svc.sessions() as session, session.begin():
            session.execute(PrintRecord.__table__.update().where(
                PrintRecord.terminal_id == terminal_id, PrintRecord.idempotency_key == idempotency_key)
                .values(status="REFUSED", count_after=exc.printed))
        message, message_en = _reprint_message(svc)
        raise Conflict("PRINT_LIMIT_REACHED", message, message_en, printed_count=exc.printed,
                       print_limit=limit) from None
    except DocumentNotFound:
        raise NotFound("DOCUMENT_NOT_FOUND", "未找到该报告或票据", "No such document for this patient") from None
    with svc.sessions() as session, session.begin():
        session.execute(PrintRecord.__table__.update().where(
            PrintRecord.terminal_id == terminal_id, PrintRecord.idempotency_key == idempotency_key)
            .values(status="RECORDED", count_after=count))
    return PrintOutcome(kind, doc_no, count, limit, earlier is not None)


# --- queries (K10) -------------------------------------------------------------------------------------------

def registration_history(svc: Services, patient_id: str) -> list[dict[str, Any]]:
    """挂号记录: the HIS's registrations, with the platform's order number where the platform made them."""
    patient_or_404(svc, patient_id)
    with svc.sessions() as session:
        order_of = dict(session.execute(select(Order.his_lock_id, Order.order_no).where(
            Order.patient_id == patient_id, Order.kind != KIND_BILL)).all())
    return [{"visit_code": r.visit_code, "order_no": order_of.get(r.lock_id), "status": r.status,
             "date": r.day.isoformat(), "start": r.start, "end": r.end, "queue_no": r.queue_no,
             "department": {"code": r.dept_code, "name": r.dept_name},
             "doctor": {"code": r.doctor_code, "name": r.doctor_name}, "location": r.location, "fee_fen": r.fee_fen,
             "booked_at": _local(svc, r.created_at), "checked_in_at": _local(svc, r.checked_in_at)}
            for r in svc.his.list_registrations(patient_id)]


#: Orders that never took money are not payment records.
_UNPAID = (OrderStatus.AWAITING_PAYMENT, OrderStatus.CLOSED)


def payment_history(svc: Services, patient_id: str) -> list[dict[str, Any]]:
    """缴费记录: every order that took money, newest first, with its parts (insurance, self-pay) and refunds."""
    patient_or_404(svc, patient_id)
    with svc.sessions() as session:
        rows = list(session.scalars(select(Order).where(Order.patient_id == patient_id,
                                                        Order.status.not_in(_UNPAID))
                                    .order_by(Order.created_at.desc(), Order.id.desc())))
    records = []
    for order in rows:
        refunds: list[dict[str, Any]] = []
        if order.refund_no:
            refunds.append({"refund_no": order.refund_no, "status": order.refund_status or order.status,
                            "amount_fen": order.amount_fen, "items": []})
        batches: dict[str, dict[str, Any]] = {}
        for item in order.items:
            if item.refund_no:
                batch = batches.setdefault(item.refund_no, {"refund_no": item.refund_no, "status": item.status,
                                                            "amount_fen": 0, "items": []})
                batch["amount_fen"] += item.amount_fen
                batch["items"].append(item.item_id)
        refunds += list(batches.values())
        insurance = order.insurance_payment
        records.append({
            "order_no": order.order_no, "kind": order.kind, "status": order.status,
            "created_at": _local(svc, order.created_at), "paid_at": _local(svc, order.paid_at),
            "amount_fen": order.amount_fen, "insurance_fen": order.insurance_fen,
            "self_pay_fen": order.self_pay_fen, "payment_method": order.payment_method,
            "insurance": None if insurance is None else {
                "state": insurance.state, "amount_fen": insurance.amount_fen,
                "split": json.loads(insurance.detail or "{}").get("split")},
            "department": order.dept_name, "doctor": order.doctor_name or None,
            "items": [{"item_id": i.item_id, "name": i.name, "amount_fen": i.amount_fen, "status": i.status}
                      for i in order.items],
            "refunds": refunds,
            "refunded_fen": sum(r["amount_fen"] for r in refunds if r["status"] in ("REFUNDED", "SUCCESS"))})
    return records


def queue_today(svc: Services, patient_id: str) -> list[dict[str, Any]]:
    """候诊: today's registrations, with the queue position of those checked in."""
    patient_or_404(svc, patient_id)
    today = svc.today()
    answer = []
    for record in svc.his.list_registrations(patient_id):
        if record.day != today or record.status == "CANCELLED":
            continue
        status = svc.his.queue_status(record.lock_id)
        answer.append({"visit_code": record.visit_code, "status": status.status, "queue_no": status.queue_no,
                       "position": status.position, "ahead": status.ahead,
                       "estimated_wait_minutes": status.estimated_wait_minutes, "location": status.location,
                       "department": record.dept_name, "doctor": record.doctor_name, "start": record.start,
                       "end": record.end})
    return answer
