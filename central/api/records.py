"""Printing (K8) and queries (K10) under ``/api/v1/kiosk/patients/{patient_id}``: the kiosk and the phone
channel call the same routes. The patient was identified first (``/patients/identify``); the routes validate
and delegate to ``central.records``."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field

from central import records
from central.api.auth import Svc, Terminal
from central.api.views import bill_view
from central.orders import NotFound

router = APIRouter(prefix="/api/v1/kiosk/patients/{patient_id}", tags=["records"])

PatientId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$")]
Kind = Literal["lab", "imaging", "record", "invoice"]
DocNo = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$")]


class PrintedRequest(BaseModel):
    """Sent when the printer reported the job completed, never before: only paper in hand counts."""

    idempotency_key: str = Field(min_length=8, max_length=128)


@router.get("/documents")
def documents(patient_id: PatientId, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    """Lab and imaging reports, medical-record summaries and e-invoices, each with its print count, the
    kiosk's limit, whether it can be printed here now, and for a report not ready the time it is expected."""
    return {"documents": records.list_documents(svc, patient_id)}


@router.get("/documents/{kind}/{doc_no}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def document_pdf(patient_id: PatientId, kind: Kind, doc_no: DocNo, svc: Svc, _terminal: Terminal) -> Response:
    """The print-ready A4 PDF (patient name masked). Fetching does not count as printing."""
    document, pdf = records.document_for_print(svc, patient_id, kind, doc_no)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{document.kind}-{document.doc_no}.pdf"',
        "Cache-Control": "no-store"})


@router.post("/documents/{kind}/{doc_no}/printed")
def printed(patient_id: PatientId, kind: Kind, doc_no: DocNo, body: PrintedRequest, svc: Svc,
            terminal: Terminal) -> dict[str, Any]:
    outcome = records.record_printed(svc, terminal, patient_id, kind, doc_no, body.idempotency_key)
    return {"kind": outcome.kind, "doc_no": outcome.doc_no, "printed_count": outcome.printed_count,
            "print_limit": outcome.print_limit, "can_print_again": outcome.printed_count < outcome.print_limit,
            "repeated": outcome.repeated}


@router.get("/history/registrations")
def registration_history(patient_id: PatientId, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    return {"registrations": records.registration_history(svc, patient_id)}


@router.get("/history/payments")
def payment_history(patient_id: PatientId, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    return {"payments": records.payment_history(svc, patient_id)}


@router.get("/history/bills")
def bill_history(patient_id: PatientId, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    """Every bill, paid or not, with its items and their state (paid, dispensed, refunded)."""
    records.patient_or_404(svc, patient_id)
    return {"bills": [bill_view(b, svc.settings.tz) for b in svc.his.list_bills(patient_id, unpaid_only=False)]}


@router.get("/history/bills/{bill_no}")
def bill_detail(patient_id: PatientId, bill_no: DocNo, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    records.patient_or_404(svc, patient_id)
    bill = svc.his.get_bill(bill_no)
    if bill is None or bill.patient_id != patient_id:
        raise NotFound("BILL_NOT_FOUND", "未找到该缴费单", "No such bill for this patient")
    return bill_view(bill, svc.settings.tz)


@router.get("/queue")
def queue(patient_id: PatientId, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    """Today's registrations and, for those checked in, the place in the queue and the estimated wait."""
    return {"date": svc.today().isoformat(), "registrations": records.queue_today(svc, patient_id)}
