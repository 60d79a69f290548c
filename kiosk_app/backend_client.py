"""The kiosk's HTTP client for the central server, implementing workflows.backend.Backend.

Every failure becomes one of two things a workflow understands: BackendError (the server said no, with a
message for the patient) or BackendUnavailable (no trustworthy answer; ask again later).
"""
from __future__ import annotations

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

    def pay(self, order_no: str, channel: str, idempotency_key: str, auth_code: str | None = None) -> Json:
        body = {"channel": channel, "idempotency_key": idempotency_key}
        if auth_code:
            body["auth_code"] = auth_code
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
