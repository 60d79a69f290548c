"""办卡绑卡 (K2): apply for an e-health card (申领电子健康卡) and bind a physical visit card (绑定就诊卡).

Identification (any K1 means, the base) → a menu with what the patient holds (e-health card yes / no, bound visit
cards masked) and what they can do:

* 申领电子健康卡: the server issues the card (or gives back the one it issued before: asking again is safe, so a
  lost answer is asked again) → the QR is printed on a slip → the QR on the glass, with the slip's fate. A patient
  who already holds a card issued elsewhere is told so on the menu; the kiosk cannot show that one.
* 绑定就诊卡: the patient holds the card's barcode under the scanner → the server binds the number → back on the
  menu with the card in the list; from then on the card identifies the patient at the insert-card screen
  (IDENTITY_CODES "visit_card"). A card bound to someone else is refused in words and the patient may scan
  another.

No money moves, so leaving at any point simply goes home. The slip is a courtesy: out of paper, the QR stays on
the glass and the card stays issued. The journal holds the patient id and which action was chosen; never the
e-health code or a card number, which live in the session (the code, to draw it) or in the one call that sends
them (the card number).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from transitions import EventData

from workflows.backend import BackendError, BackendUnavailable
from workflows.card_slip import ehealth_card_slip
from workflows.service_base import JournaledService, Session, ending_transitions, identification_transitions
from workflows.slips import print_slip
from workflows.view import View

log = logging.getLogger(__name__)

WORKFLOW = "patient_cards"

STATES = ["home", "reading_card", "identifying", "choosing_card", "issuing", "printing", "done", "scanning_card",
          "binding", "failed"]
#: Where the patient may leave with a tap or by walking away: nothing is being written there.
LEAVABLE = ["reading_card", "identifying", "choosing_card", "scanning_card"]

TRANSITIONS: list[dict[str, Any]] = [
    *identification_transitions("choosing_card"),
    {"trigger": "apply_ehealth", "source": "choosing_card", "dest": "issuing", "conditions": "_may_apply",
     "prepare": "_chose_ehealth"},
    {"trigger": "issued", "source": "issuing", "dest": "printing"},
    {"trigger": "refused", "source": "issuing", "dest": "choosing_card"},
    {"trigger": "printed", "source": "printing", "dest": "done"},
    {"trigger": "bind_card", "source": "choosing_card", "dest": "scanning_card", "conditions": "_scanner_usable",
     "prepare": "_chose_binding"},
    {"trigger": "code_scanned", "source": "scanning_card", "dest": "binding", "conditions": "_visit_card_scanned"},
    {"trigger": "bound", "source": "binding", "dest": "choosing_card"},
    {"trigger": "refused", "source": "binding", "dest": "scanning_card"},
    {"trigger": "back", "source": ["done", "scanning_card"], "dest": "choosing_card"},
    {"trigger": "cancel", "source": LEAVABLE, "dest": "home"},
    {"trigger": "timeout", "source": [s for s in LEAVABLE if s != "identifying"], "dest": "home"},
    {"trigger": "finish", "source": "choosing_card", "dest": "home"},
    *ending_transitions(STATES),
]

BUSY_TEXT = {
    "identifying": ("正在查询您的就诊档案…", "Looking up your patient record…"),
    "issuing": ("正在为您申领电子健康卡…", "Applying for your e-health card…"),
    "printing": ("正在打印电子健康卡凭条…", "Printing your e-health card slip…"),
    "binding": ("正在绑定就诊卡…", "Binding your visit card…"),
}
# The QR screen waits as long as a menu: a patient may be photographing it or opening a phone.
IDLE = {"reading_card": "reading_card", "choosing_card": "choosing", "scanning_card": "choosing",
        "done": "choosing", "failed": "failed"}

#: A visit card's number as its barcode carries it; the server checks the same.
VISIT_CARD_NUMBER = re.compile(r"[0-9A-Za-z]{6,20}")
NOT_A_VISIT_CARD = ("这不是就诊卡条码。请将就诊卡背面的条码对准扫码口",
                    "That is not a visit card barcode. Please hold the barcode on the back of the visit card "
                    "under the scanner.")
HELD_ELSEWHERE = ("您已有电子健康卡，请在手机（微信或健康卡App）中出示，无需重复申领",
                  "You already have an e-health card. Show it from your phone (WeChat or the health-card app); "
                  "there is no need to apply again.")
SCANNER_DOWN = ("扫码器暂时故障，请到其他自助机或人工窗口绑卡",
                "The scanner is out of order. Please bind your card at another kiosk or a counter.")


def bound_words(masked: str) -> tuple[str, str]:
    return (f"就诊卡 {masked} 绑定成功，下次可直接扫此卡识别",
            f"Visit card {masked} is bound. Next time, scan it to identify yourself.")


@dataclass
class CardsVisit(Session):
    """One patient's session; replaced on every return home (the wipe)."""

    action: str = ""  # "ehealth" | "visit_card": what the patient chose last
    cards: dict[str, Any] | None = None  # the server's answer: e-health card held?, masked visit cards
    #: The e-health card's code, kept only to draw and print its QR; gone with the session.
    code: str = field(default="", repr=False)
    created: bool = False
    print_failed: bool = False

    def journal_data(self) -> dict[str, Any]:
        """The patient and the action: never the code or a card number."""
        return {**super().journal_data(), "action": self.action or None}


class PatientCards(JournaledService):
    """办卡绑卡. Call `handle(intent, **kw)` for patient and device events and `tick()` on a clock."""

    WORKFLOW = WORKFLOW
    STATES = STATES
    TRANSITIONS = TRANSITIONS
    # The slip is a courtesy and the scanner serves one branch only: neither stops the whole service.
    REQUIRED_DEVICES = {"id_card": ("身份证读卡器", "ID-card reader")}
    BUSY_TEXT = BUSY_TEXT
    IDLE = IDLE
    CANCELLABLE = frozenset(LEAVABLE)

    visit: CardsVisit

    def new_session(self) -> CardsVisit:
        return CardsVisit()

    # ---- conditions and prepare callbacks -----------------------------------------------------------

    def _chose_ehealth(self, event: EventData) -> None:
        self.visit.action = "ehealth"

    def _chose_binding(self, event: EventData) -> None:
        self.visit.action = "visit_card"

    def _may_apply(self, event: EventData) -> bool:
        held = (self.visit.cards or {}).get("ehealth_card") or {}
        return not (held.get("held") and not held.get("can_show"))  # a card from elsewhere cannot be shown here

    def _scanner_usable(self, event: EventData) -> bool:
        if self._scanner_ok():
            return True
        self.visit.notice = SCANNER_DOWN
        self.publish(self._screen(self.state))
        return False

    def _visit_card_scanned(self, event: EventData) -> bool:
        """Only a visit card's barcode binds; an e-health QR or a payment code held up by mistake is explained."""
        code = str(event.kwargs.get("code") or "")
        if event.kwargs.get("kind") == "visit_card" and VISIT_CARD_NUMBER.fullmatch(code):
            return True
        self.visit.notice = NOT_A_VISIT_CARD
        self.publish(self._screen(self.state))
        return False

    def _scanner_ok(self) -> bool:
        health = self.devices.get("scanner")
        return health is None or health.usable

    # ---- side effects -------------------------------------------------------------------------------

    def _enter_choosing_card(self, event: EventData) -> None:
        v = self.visit
        name = event.event.name
        if name == "bound":  # the bind answer carries the new list: nothing to ask again
            answer = event.kwargs.get("answer") or {}
            v.cards = {"ehealth_card": answer.get("ehealth_card") or (v.cards or {}).get("ehealth_card") or {},
                       "visit_cards": list(answer.get("visit_cards") or [])}
            v.notice = bound_words(str(answer.get("card_masked", "")))
            return
        if name == "refused":
            v.notice = (event.kwargs.get("message", ""), event.kwargs.get("message_en", ""))
            return
        v.notice = ("", "")
        if v.cards is not None:  # back from the QR or the scanner: the menu as the patient left it
            return
        ok, cards = self._load(lambda: self.backend.patient_cards(v.patient["patient_id"]))
        if ok:
            v.cards = cards

    def _enter_issuing(self, event: EventData) -> None:
        v = self.visit
        try:
            # The server gives the same card when asked again, so an answer lost on the way is simply asked for.
            answer = self._retrying(lambda: self.backend.issue_ehealth_card(v.patient["patient_id"]))
        except BackendError as exc:
            self._go("refused", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._fail_offline()
            return
        if not answer.get("code"):
            v.cards = {**(v.cards or {}), "ehealth_card": {"held": True, "can_show": False}}
            self._go("refused", message=HELD_ELSEWHERE[0], message_en=HELD_ELSEWHERE[1])
            return
        v.code, v.created, v.print_failed = str(answer["code"]), bool(answer.get("created")), False
        v.cards = {**(v.cards or {}), "ehealth_card": {"held": True, "can_show": True}}
        self._go("issued")

    def _enter_printing(self, event: EventData) -> None:
        v = self.visit
        printer = self.devices.get("receipt_printer")
        if printer is not None and not printer.usable:  # known to be out of paper: the QR on the glass serves
            v.print_failed = True
            self._go("printed")
            return
        masked = str((v.patient or {}).get("name_masked", ""))
        print_slip(self, lambda hospital: ehealth_card_slip(hospital, v.code, masked, self.terminal_id, self.now()),
                   "e-health card")

    def _enter_scanning_card(self, event: EventData) -> None:
        """A refusal is said over the scanner screen, so the patient can hold up another card at once."""
        if event.event.name == "refused":
            self.visit.notice = (event.kwargs.get("message", ""), event.kwargs.get("message_en", ""))
        else:
            self.visit.notice = ("", "")

    def _enter_binding(self, event: EventData) -> None:
        v = self.visit
        card_no = str(event.kwargs.get("code"))
        try:
            # Binding the same card to the same patient again changes nothing: safe to ask again.
            answer = self._retrying(lambda: self.backend.bind_visit_card(v.patient["patient_id"], card_no))
        except BackendError as exc:
            self._go("refused", message=exc.message, message_en=exc.message_en)
            return
        except BackendUnavailable:
            self._fail_offline()
            return
        finally:
            del card_no  # the number lives for this call only
        self._go("bound", answer=answer)

    # ---- view ---------------------------------------------------------------------------------------

    def _view_for(self, state: str) -> View:
        v = self.visit
        if state == "home":
            return self._home_view()
        base = self._base_view(state)
        msg, msg_en = v.notice
        if state == "reading_card":
            return View("insert_card", **base)
        if state in BUSY_TEXT:
            zh, en = BUSY_TEXT[state]
            return View("busy", {"text": zh, "text_en": en}, **base)
        if state == "choosing_card":
            cards = v.cards or {}
            held = cards.get("ehealth_card") or {}
            ehealth = "none" if not held.get("held") else ("here" if held.get("can_show") else "elsewhere")
            scanner_ok = self._scanner_ok()
            return View("card_menu", {"ehealth": ehealth, "visit_cards": list(cards.get("visit_cards") or []),
                                      "can_bind": scanner_ok, "bind_reason": "" if scanner_ok else SCANNER_DOWN[0],
                                      "bind_reason_en": "" if scanner_ok else SCANNER_DOWN[1]},
                        message=msg, message_en=msg_en, **base)
        if state == "scanning_card":
            return View("scan_visit_card", {}, message=msg, message_en=msg_en, can_back=True, **base)
        if state == "done":
            return View("ehealth_card", {"code": v.code, "created": v.created, "print_failed": v.print_failed},
                        **base)
        return View("error", {}, message=msg, message_en=msg_en, **base)
