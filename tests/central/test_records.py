"""Printing (K8) and queries (K10) over real HTTP: the documents with their print counts, print-ready PDFs with
the CJK font embedded and the name masked, prints counted once per completed job and refused past the limit,
and the registration, payment, bill and queue history."""
from __future__ import annotations

import subprocess
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from central.his.seed import DEMO_PATIENT, DEMO_PATIENT_ID
from central.his.tables import HisLabReport
from tests.central.conftest import LiveCentral, provision
from tests.central.test_appointments import weekday_ahead
from tests.central.visits import assert_error, booked_and_paid, future_slot, local

DOCS = f"/patients/{DEMO_PATIENT_ID}/documents"


def tomorrow_morning(live: LiveCentral) -> None:
    """Every seeded report is out by then except the demo patient's ultrasound (expected tomorrow 16:00)."""
    moment = local(live, live.svc.today() + timedelta(days=1), "09:00")
    live.svc.clock = lambda: moment


def pdf_text_and_fonts(pdf: bytes, tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True)
    return text.stdout, fonts.stdout


def test_documents_list_with_counts_and_readiness(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    tomorrow_morning(live)
    documents = live.api(kiosk, "GET", DOCS).json()["documents"]
    by_no = {d["doc_no"]: d for d in documents}
    assert {"lab", "imaging", "record"} <= {d["kind"] for d in documents}
    ready = by_no["IMG0000001"]
    assert ready["ready"] and ready["can_print"] and ready["printed_count"] == 0 and ready["print_limit"] == 1
    waiting = by_no["IMG0000002"]
    expected = local(live, live.svc.today(), "16:00").isoformat(timespec="minutes")
    assert not waiting["ready"] and not waiting["can_print"] and waiting["expected_at"] == expected
    assert "预计" in waiting["note"] and "16:00" in waiting["note_en"]
    assert sum(1 for d in documents if d["kind"] == "record") == 2
    assert all(d["ready"] for d in documents if d["kind"] == "lab")
    assert_error(live.api(kiosk, "GET", "/patients/P99999999/documents"), 404, "PATIENT_NOT_FOUND")
    assert_error(live.api(kiosk, "GET", "/patients/P0000*0000/documents"), 422, "BAD_REQUEST")


def test_pdfs_embed_the_cjk_font_and_mask_the_name(live: LiveCentral, tmp_path: Path) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    tomorrow_morning(live)
    documents = live.api(kiosk, "GET", DOCS).json()["documents"]
    for kind in ("lab", "imaging", "record"):
        doc = next(d for d in documents if d["kind"] == kind and d["ready"])
        response = live.api(kiosk, "GET", f"{DOCS}/{kind}/{doc['doc_no']}/pdf")
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
        text, fonts = pdf_text_and_fonts(response.content, tmp_path)
        assert "李*英" in text and DEMO_PATIENT["name"] not in text and DEMO_PATIENT["id_number"] not in text
        assert doc["doc_no"] in text
        # the CJK TrueType subset is in the file (emb and sub columns), not left to the printer to find
        cjk = [row.split() for row in fonts.splitlines()[2:] if "WenQuanYi" in row or "Hei" in row
               or "Ming" in row or "Droid" in row]
        assert cjk and all(row[-5:-3] == ["yes", "yes"] for row in cjk), fonts
    lab = next(d for d in documents if d["kind"] == "lab")
    text, _ = pdf_text_and_fonts(live.api(kiosk, "GET", f"{DOCS}/lab/{lab['doc_no']}/pdf").content, tmp_path)
    assert "白细胞计数" in text and "×10^9/L" in text  # results, Chinese and Latin side by side
    # fetching is not printing
    assert next(d for d in live.api(kiosk, "GET", DOCS).json()["documents"]
                if d["doc_no"] == lab["doc_no"])["printed_count"] == 0


def test_a_report_not_ready_cannot_be_printed(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    tomorrow_morning(live)
    refused = assert_error(live.api(kiosk, "GET", f"{DOCS}/imaging/IMG0000002/pdf"), 409, "REPORT_NOT_READY")
    assert refused["expected_at"].endswith("16:00+08:00") and "16:00" in refused["message"]
    assert_error(live.api(kiosk, "POST", f"{DOCS}/imaging/IMG0000002/printed",
                          json={"idempotency_key": uuid.uuid4().hex}), 409, "REPORT_NOT_READY")
    later = local(live, live.svc.today(), "16:01")
    live.svc.clock = lambda: later
    assert live.api(kiosk, "GET", f"{DOCS}/imaging/IMG0000002/pdf").status_code == 200


def test_prints_count_once_and_stop_at_the_limit(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    tomorrow_morning(live)
    lab = next(d for d in live.api(kiosk, "GET", DOCS).json()["documents"] if d["kind"] == "lab")
    path = f"{DOCS}/lab/{lab['doc_no']}"
    first = live.api(kiosk, "POST", f"{path}/printed", json={"idempotency_key": "print-job-0001"})
    assert first.status_code == 200, first.text
    assert first.json() == {"kind": "lab", "doc_no": lab["doc_no"], "printed_count": 1, "print_limit": 1,
                            "can_print_again": False, "repeated": False}
    retried = live.api(kiosk, "POST", f"{path}/printed", json={"idempotency_key": "print-job-0001"})
    assert retried.status_code == 200 and retried.json()["printed_count"] == 1 and retried.json()["repeated"]
    with live.svc.sessions() as session:
        assert session.get(HisLabReport, lab["doc_no"]).printed_count == 1  # the HIS counted it once

    over = assert_error(live.api(kiosk, "POST", f"{path}/printed", json={"idempotency_key": "print-job-0002"}),
                        409, "PRINT_LIMIT_REACHED")
    assert "服务台" in over["message"] and "service desk" in over["message_en"] and over["print_limit"] == 1
    assert_error(live.api(kiosk, "GET", f"{path}/pdf"), 409, "PRINT_LIMIT_REACHED")
    listed = next(d for d in live.api(kiosk, "GET", DOCS).json()["documents"] if d["doc_no"] == lab["doc_no"])
    assert listed["printed_count"] == 1 and not listed["can_print"] and "服务台" in listed["note"]
    with live.svc.sessions() as session:
        assert session.get(HisLabReport, lab["doc_no"]).printed_count == 1

    # one key, one document
    assert_error(live.api(kiosk, "POST", f"{DOCS}/imaging/IMG0000001/printed",
                          json={"idempotency_key": "print-job-0001"}), 409, "IDEMPOTENCY_CONFLICT")
    # the limit is the hospital's rule
    live.svc.his.his_rules = replace(live.svc.his.his_rules, print_limits=(("lab", 2),))
    again = live.api(kiosk, "POST", f"{path}/printed", json={"idempotency_key": "print-job-0003"})
    assert again.status_code == 200 and again.json()["printed_count"] == 2


def test_print_refusals_for_wrong_requests(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    tomorrow_morning(live)
    other = live.api(kiosk, "GET", "/patients/P00000001/documents").json()["documents"]
    assert all(d["doc_no"] != "IMG0000001" for d in other)
    assert_error(live.api(kiosk, "GET", "/patients/P00000001/documents/imaging/IMG0000001/pdf"), 404,
                 "DOCUMENT_NOT_FOUND")  # the demo patient's report, asked for as another patient's
    assert_error(live.api(kiosk, "GET", f"{DOCS}/lab/LAB9999999/pdf"), 404, "DOCUMENT_NOT_FOUND")
    assert_error(live.api(kiosk, "GET", f"{DOCS}/xray/IMG0000001/pdf"), 422, "BAD_REQUEST")
    assert_error(live.api(kiosk, "POST", f"{DOCS}/imaging/IMG0000001/printed", json={"idempotency_key": "x"}),
                 422, "BAD_REQUEST")
    assert_error(live.api(kiosk, "POST", f"{DOCS}/imaging/IMG0000001/printed", json={}), 422, "BAD_REQUEST")
    assert_error(live.api(kiosk, "POST", "/patients/P99999999/documents/imaging/IMG0000001/printed",
                          json={"idempotency_key": uuid.uuid4().hex}), 404, "PATIENT_NOT_FOUND")


def test_paid_orders_get_an_e_invoice_and_show_in_the_history(live: LiveCentral, tmp_path: Path) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    slot = future_slot(live, "XXG", weekday_ahead(live))
    done = booked_and_paid(live, kiosk, DEMO_PATIENT_ID, slot.id)
    invoices = [d for d in live.api(kiosk, "GET", DOCS).json()["documents"] if d["kind"] == "invoice"]
    assert len(invoices) == 1 and invoices[0]["amount_fen"] == done["amount_fen"] and invoices[0]["can_print"]
    assert [d["doc_no"] for d in live.api(kiosk, "GET", DOCS).json()["documents"]
            if d["kind"] == "invoice"] == [invoices[0]["doc_no"]]  # listing again issues nothing new
    pdf = live.api(kiosk, "GET", f"{DOCS}/invoice/{invoices[0]['doc_no']}/pdf")
    assert pdf.status_code == 200
    text, _ = pdf_text_and_fonts(pdf.content, tmp_path)
    amount = f"{done['amount_fen'] // 100}.{done['amount_fen'] % 100:02d}"
    assert "挂号费" in text and amount in text and "李*英" in text and done["order_no"] in text

    registrations = live.api(kiosk, "GET", f"/patients/{DEMO_PATIENT_ID}/history/registrations").json()
    mine = next(r for r in registrations["registrations"] if r["order_no"] == done["order_no"])
    assert mine["status"] == "BOOKED" and mine["date"] == slot.day.isoformat()
    assert mine["visit_code"] == done["registration"]["visit_code"] and mine["fee_fen"] == done["amount_fen"]

    payments = live.api(kiosk, "GET", f"/patients/{DEMO_PATIENT_ID}/history/payments").json()["payments"]
    paid = next(p for p in payments if p["order_no"] == done["order_no"])
    assert paid["status"] == "FULFILLED" and paid["amount_fen"] == done["amount_fen"]
    assert paid["self_pay_fen"] == done["amount_fen"] and paid["insurance_fen"] == 0 and paid["refunds"] == []
    assert paid["payment_method"] == "wechat_native"

    cancelled = live.api(kiosk, "POST", f"/appointments/{done['order_no']}/cancel",
                         json={"patient_id": DEMO_PATIENT_ID})
    assert cancelled.json()["status"] == "REFUNDED"
    refunded = next(p for p in live.api(kiosk, "GET", f"/patients/{DEMO_PATIENT_ID}/history/payments").json()[
        "payments"] if p["order_no"] == done["order_no"])
    assert refunded["status"] == "REFUNDED" and refunded["refunds"][0]["amount_fen"] == done["amount_fen"]
    assert next(r for r in live.api(kiosk, "GET", f"/patients/{DEMO_PATIENT_ID}/history/registrations").json()[
        "registrations"] if r["order_no"] == done["order_no"])["status"] == "CANCELLED"


def test_bill_history_and_detail(live: LiveCentral) -> None:
    kiosk = provision(live.svc, "KIOSK-001")
    bills = live.api(kiosk, "GET", f"/patients/{DEMO_PATIENT_ID}/history/bills").json()["bills"]
    assert bills and all(b["items"] for b in bills)
    detail = live.api(kiosk, "GET", f"/patients/{DEMO_PATIENT_ID}/history/bills/{bills[0]['bill_no']}").json()
    assert detail == bills[0] and detail["total_fen"] == sum(i["amount_fen"] for i in detail["items"])
    assert_error(live.api(kiosk, "GET", f"/patients/P00000001/history/bills/{bills[0]['bill_no']}"), 404,
                 "BILL_NOT_FOUND")
    assert_error(live.api(kiosk, "GET", "/patients/P99999999/history/bills"), 404, "PATIENT_NOT_FOUND")
    assert_error(live.api(kiosk, "GET", "/patients/P99999999/history/payments"), 404, "PATIENT_NOT_FOUND")
    assert_error(live.api(kiosk, "GET", "/patients/P99999999/queue"), 404, "PATIENT_NOT_FOUND")
    assert live.api(kiosk, "GET", f"/patients/{DEMO_PATIENT_ID}/queue").json()["registrations"] == []
