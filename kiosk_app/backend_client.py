"""The kiosk's HTTP client for the central server, implementing workflows.backend.Backend.

Every failure becomes one of two things a workflow understands: BackendError (the server said no, with a
message for the patient) or BackendUnavailable (no trustworthy answer; ask again later).
"""
from __future__ import annotations

import base64
import logging
from typing import Any

import httpx

from kiosk_app.config import Credentials
from workflows.backend import BackendError, BackendUnavailable, Json

log = logging.getLogger(__name__)


class HttpBackend:
    def __init__(self, credentials: Credentials, timeout: float = 10.0):
        self.terminal_id = credentials.terminal_id
        self._http = httpx.Client(base_url=credentials.server_url.rstrip("/") + "/api/v1/kiosk",
                                  auth=(credentials.terminal_id, credentials.secret),
                                  timeout=httpx.Timeout(timeout, connect=3.0))

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Json:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("%s %s: %s", method, path, type(exc).__name__)
            raise BackendUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        if resp.status_code >= 500:
            raise BackendUnavailable(f"{method} {path}: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise BackendUnavailable(f"{method} {path}: not JSON (HTTP {resp.status_code})") from exc
        if resp.status_code >= 400:
            if not isinstance(body, dict):
                body = {}
            raise BackendError(body.get("code", f"HTTP_{resp.status_code}"),
                               body.get("message", "服务暂不可用，请到人工窗口办理"),
                               body.get("message_en", ""), body)
        return body

    def hospital(self) -> Json:
        return self._call("GET", "/hospital")

    def identify_by_id_card(self, id_number: str, name: str) -> Json:
        return self._call("POST", "/patients/identify",
                          json={"method": "id_card", "id_number": id_number, "name": name})

    def identify_by_code(self, method: str, code: str) -> Json:
        # The code is a credential: it goes in the body, never into a URL or a log line.
        return self._call("POST", "/patients/identify", json={"method": method, "code": code})

    def create_patient(self, id_number: str, name: str, gender: str, birth: str, phone: str) -> Json:
        return self._call("POST", "/patients", json={"id_number": id_number, "name": name, "gender": gender,
                                                     "birth": birth, "phone": phone})

    def departments(self) -> list[Json]:
        return self._call("GET", "/departments")["departments"]

    def doctors(self, department: str) -> list[Json]:
        return self._call("GET", f"/departments/{department}/doctors")["doctors"]

    def slots(self, department: str, doctor: str) -> list[Json]:
        return self._call("GET", f"/departments/{department}/doctors/{doctor}/slots")["slots"]

    def create_registration(self, patient_id: str, slot_id: int | str, idempotency_key: str) -> Json:
        return self._call("POST", "/registrations", json={"patient_id": patient_id, "slot_id": slot_id,
                                                          "idempotency_key": idempotency_key})

    def registration_by_key(self, idempotency_key: str) -> Json | None:
        try:
            return self._call("GET", f"/registrations/by-key/{idempotency_key}")
        except BackendError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise

    def pay(self, order_no: str, channel: str, idempotency_key: str, auth_code: str | None = None,
            card: Json | None = None) -> Json:
        body: Json = {"channel": channel, "idempotency_key": idempotency_key}
        if auth_code:
            body["auth_code"] = auth_code
        if card:  # the PAN and PIN block go in the body only; `_call` logs the path and the error type
            body["card"] = dict(card)
        return self._call("POST", f"/orders/{order_no}/pay", json=body)

    def order(self, order_no: str) -> Json:
        return self._call("GET", f"/orders/{order_no}")

    def cancel(self, order_no: str) -> Json:
        return self._call("POST", f"/orders/{order_no}/cancel")

    # ---- outpatient payment (门诊缴费) and item refunds (退费) ----------------------------------------------

    def bills(self, patient_id: str) -> list[Json]:
        return self._call("GET", f"/patients/{patient_id}/bills")["bills"]

    def create_bill_order(self, patient_id: str, bill_no: str, idempotency_key: str) -> Json:
        return self._call("POST", "/bills", json={"patient_id": patient_id, "bill_no": bill_no,
                                                  "idempotency_key": idempotency_key})

    def presettle_insurance(self, order_no: str, credential: str, number: str) -> Json:
        # `number` is the patient's insurance credential: it goes in the body, never into a URL or a log line.
        return self._call("POST", f"/orders/{order_no}/insurance", json={"credential": credential,
                                                                        "number": number})

    def refund_items(self, order_no: str, item_ids: list[str]) -> Json:
        return self._call("POST", f"/orders/{order_no}/refund-items", json={"item_ids": list(item_ids)})

    def patient_orders(self, patient_id: str, kind: str = "bill") -> list[Json]:
        return self._call("GET", f"/patients/{patient_id}/orders", params={"kind": kind})["orders"]

    # ---- appointments (预约挂号) and check-in (取号报到) -------------------------------------------------------

    def appointment_departments(self, clinic_type: str | None = None) -> list[Json]:
        params = {"clinic_type": clinic_type} if clinic_type else None
        return self._call("GET", "/appointments/departments", params=params)["departments"]

    def appointment_doctors(self, department: str) -> list[Json]:
        return self._call("GET", f"/appointments/departments/{department}/doctors")["doctors"]

    def appointment_dates(self, department: str, doctor: str) -> Json:
        return self._call("GET", f"/appointments/departments/{department}/doctors/{doctor}/dates")

    def appointment_slots(self, department: str, doctor: str, day: str) -> list[Json]:
        return self._call("GET", f"/appointments/departments/{department}/doctors/{doctor}/slots",
                          params={"date": day})["slots"]

    def search_doctors(self, text: str) -> list[Json]:
        return self._call("GET", "/appointments/doctors/search", params={"q": text})["doctors"]

    def book_appointment(self, patient_id: str, slot_id: int | str, idempotency_key: str) -> Json:
        return self._call("POST", "/appointments", json={"patient_id": patient_id, "slot_id": int(slot_id),
                                                         "idempotency_key": idempotency_key})

    def cancel_appointment(self, order_no: str, patient_id: str) -> Json:
        return self._call("POST", f"/appointments/{order_no}/cancel", json={"patient_id": patient_id})

    def check_in(self, order_no: str, patient_id: str) -> Json:
        return self._call("POST", f"/appointments/{order_no}/check-in", json={"patient_id": patient_id})

    def registration_history(self, patient_id: str) -> list[Json]:
        return self._call("GET", f"/patients/{patient_id}/history/registrations")["registrations"]

    # ---- printing (打印, K8) and queries (查询, K10) ---------------------------------------------------------

    def documents(self, patient_id: str) -> list[Json]:
        return self._call("GET", f"/patients/{patient_id}/documents")["documents"]

    def document_pdf(self, patient_id: str, kind: str, doc_no: str) -> bytes:
        """The print-ready PDF. Not JSON, so it has its own request; failures map like `_call`'s."""
        path = f"/patients/{patient_id}/documents/{kind}/{doc_no}/pdf"
        try:
            resp = self._http.get(path)
        except httpx.HTTPError as exc:
            log.warning("GET document pdf: %s", type(exc).__name__)
            raise BackendUnavailable(f"GET {kind} pdf: {type(exc).__name__}") from exc
        if resp.status_code >= 500:
            raise BackendUnavailable(f"GET {kind} pdf: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            raise BackendError(body.get("code", f"HTTP_{resp.status_code}"),
                               body.get("message", "服务暂不可用，请到人工窗口办理"), body.get("message_en", ""), body)
        if not resp.content.startswith(b"%PDF"):
            raise BackendUnavailable(f"GET {kind} pdf: the answer is not a PDF")
        return resp.content

    def record_printed(self, patient_id: str, kind: str, doc_no: str, idempotency_key: str) -> Json:
        return self._call("POST", f"/patients/{patient_id}/documents/{kind}/{doc_no}/printed",
                          json={"idempotency_key": idempotency_key})

    # registration_history (挂号记录) is defined with appointments above.

    def payment_history(self, patient_id: str) -> list[Json]:
        return self._call("GET", f"/patients/{patient_id}/history/payments")["payments"]

    def bill_history(self, patient_id: str) -> list[Json]:
        return self._call("GET", f"/patients/{patient_id}/history/bills")["bills"]

    def bill_detail(self, patient_id: str, bill_no: str) -> Json:
        return self._call("GET", f"/patients/{patient_id}/history/bills/{bill_no}")

    def queue(self, patient_id: str) -> list[Json]:
        return self._call("GET", f"/patients/{patient_id}/queue")["registrations"]

    # ---- identification by a typed passport / HK-Macao-Taiwan permit number (K1) ----------------------------

    def identify_by_document(self, document_number: str, name: str) -> Json:
        # The number and the name identify a person: they go in the body, never into a URL or a log line.
        return self._call("POST", "/patients/identify", json={"method": "document_number",
                                                              "document_number": document_number, "name": name})

    # ---- identification by face (刷脸, K1) ----------------------------------------------------------------------

    def identify_by_face(self, image_jpeg: bytes) -> Json:
        # The picture is the patient's biometric data: it goes in the body only, and no error path logs it.
        return self._call("POST", "/patients/identify-face",
                          json={"image_b64": base64.b64encode(image_jpeg).decode("ascii")})

    # ---- bank cards (银行卡) ------------------------------------------------------------------------------------

    def card_sign_on(self) -> Json:
        return self._call("POST", "/card/sign-on")

    # ---- cards (办卡绑卡, K2) --------------------------------------------------------------------------------

    def patient_cards(self, patient_id: str) -> Json:
        return self._call("GET", f"/patients/{patient_id}/cards")

    def issue_ehealth_card(self, patient_id: str) -> Json:
        return self._call("POST", f"/patients/{patient_id}/ehealth-card")

    def bind_visit_card(self, patient_id: str, card_no: str) -> Json:
        # The card number is a credential: in the body, never in the URL that a failure would log.
        return self._call("POST", f"/patients/{patient_id}/visit-cards", json={"card_no": card_no})
