"""办卡绑卡 (K2) under ``/api/v1/kiosk/patients/{patient_id}``: what cards the patient holds, 申领电子健康卡 and
绑定就诊卡. The patient was identified first (``/patients/identify``); the HIS adapter keeps the cards.

Card numbers and e-health codes are credentials (whoever shows one is taken for the patient): they travel in
request and response bodies only, never in a URL or a log line, and a visit card comes back masked. The one
clear e-health code the server sends is the one the kiosk must draw as a QR; that answer is not cached.
"""
from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from central import records
from central.api.auth import Svc, Terminal
from central.api.errors import ApiError
from central.his.adapter import VisitCardTaken
from central.services import Services

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/kiosk/patients/{patient_id}", tags=["cards"])

PatientId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$")]
#: A visit card's number as its barcode carries it (Code 128: letters and digits). Hospitals differ in length.
VISIT_CARD_PATTERN = r"^[0-9A-Za-z]{6,20}$"

NOT_SUPPORTED = ApiError(409, "NOT_SUPPORTED", "本院暂不支持自助办卡绑卡，请到人工窗口办理",
                         "Cards are issued and bound at a service counter here")
TAKEN = ("该就诊卡已绑定其他就诊人，无法再次绑定。如有疑问请携带身份证和就诊卡到人工窗口核实",
         "This visit card is already bound to another patient. Please bring your ID card and the visit card to a "
         "service counter.")


class VisitCardRequest(BaseModel):
    card_no: str = Field(pattern=VISIT_CARD_PATTERN)

    def __repr__(self) -> str:  # a card number never reaches a log line
        return "VisitCardRequest(...)"


def mask_card(card_no: str) -> str:
    """'6123451234' → '6*****1234': the first and the last four are enough for a patient to know their card."""
    if len(card_no) <= 5:
        return "*" * len(card_no)
    return card_no[0] + "*" * (len(card_no) - 5) + card_no[-4:]


def _cards_view(svc: Services, patient_id: str) -> dict[str, Any]:
    try:
        held = svc.his.cards_on_file(patient_id)
    except NotImplementedError:
        raise NOT_SUPPORTED from None
    return {"ehealth_card": {"held": held.ehealth != "none", "can_show": held.ehealth == "here"},
            "visit_cards": [mask_card(no) for no in held.visit_cards]}


@router.get("/cards")
def cards(patient_id: PatientId, svc: Svc, _terminal: Terminal) -> dict[str, Any]:
    """Whether the patient holds an e-health card (and whether the kiosk can show it again), and the visit
    cards bound to the file, masked."""
    records.patient_or_404(svc, patient_id)
    return _cards_view(svc, patient_id)


@router.post("/ehealth-card")
def issue_ehealth_card(patient_id: PatientId, svc: Svc, terminal: Terminal, response: Response) -> dict[str, Any]:
    """申领电子健康卡: the card's code for the kiosk to draw and print. Asking again gives the same card, so a kiosk
    that lost the answer simply asks again. ``code`` is null when the patient holds a card issued elsewhere."""
    records.patient_or_404(svc, patient_id)
    try:
        issue = svc.his.issue_ehealth_card(patient_id)
    except NotImplementedError:
        raise NOT_SUPPORTED from None
    response.headers["Cache-Control"] = "no-store"
    log.info("e-health card for %s by terminal %s (%s)", patient_id, terminal,
             "new" if issue.created else ("existing" if issue.code else "held elsewhere"))
    return {"code": issue.code, "created": issue.created, "held_elsewhere": issue.code is None}


@router.post("/visit-cards")
def bind_visit_card(patient_id: PatientId, body: VisitCardRequest, svc: Svc, terminal: Terminal) -> dict[str, Any]:
    """绑定就诊卡: from now on the card identifies this patient (``/patients/identify`` method ``visit_card``).
    Binding the same card to the same patient again changes nothing; a card bound to someone else is refused."""
    records.patient_or_404(svc, patient_id)
    try:
        created = svc.his.bind_visit_card(body.card_no.upper(), patient_id)
    except NotImplementedError:
        raise NOT_SUPPORTED from None
    except VisitCardTaken:
        log.info("visit card refused for %s at terminal %s: bound to another file", patient_id, terminal)
        raise ApiError(409, "VISIT_CARD_TAKEN", TAKEN[0], TAKEN[1]) from None
    log.info("visit card %s for %s by terminal %s", "bound" if created else "already bound", patient_id, terminal)
    return {"card_masked": mask_card(body.card_no.upper()), "created": created, **_cards_view(svc, patient_id)}
