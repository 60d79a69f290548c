"""Queries (信息查询, K10): registration records, payment records (with refunds and the insurance part), bills
with their items, and today's queue positions with the estimated wait.

ID card → four tabs (挂号记录, 缴费记录, 费用明细, 排队进度) → a bill's items on its own screen. Read-only: nothing is
paid, printed or changed, so there is nothing to compensate after a crash and Cancel or the idle timeout simply
go home, which wipes what was shown (the session is replaced).

Why tabs load on demand and a failed tab does not end the visit: the four lists come from different parts of
the HIS, and a patient who came for the queue should not lose it because the payment history is slow. Tapping
a tab again asks again (the queue moves while the patient watches).

The journal holds the patient id, the tab and a bill number: never a name or what the records say.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from transitions import EventData

from workflows.backend import BackendError, BackendUnavailable
from workflows.service_base import (OFFLINE, JournaledService, Session, ending_transitions,
                                    identification_transitions)
from workflows.view import View

log = logging.getLogger(__name__)

WORKFLOW = "queries"

#: (tab, Chinese, English), in the order the tabs sit.
TABS: list[tuple[str, str, str]] = [
    ("registrations", "挂号记录", "Registrations"),
    ("payments", "缴费记录", "Payments"),
    ("bills", "费用明细", "Bills"),
    ("queue", "排队进度", "Queue"),
]
TAB_IDS = [t for t, _, _ in TABS]

STATES = ["home", "reading_card", "identifying", "browsing", "viewing_bill", "done", "failed"]

TRANSITIONS: list[dict[str, Any]] = [
    *identification_transitions("browsing"),
    {"trigger": "open_bill", "source": "browsing", "dest": "viewing_bill", "conditions": "_bill_known",
     "prepare": "_keep_bill"},
    {"trigger": "back", "source": "viewing_bill", "dest": "browsing"},
    {"trigger": "cancel", "source": ["reading_card", "identifying", "browsing", "viewing_bill"], "dest": "home"},
    {"trigger": "timeout", "source": ["reading_card", "browsing", "viewing_bill"], "dest": "home"},
    {"trigger": "finish", "source": ["browsing", "viewing_bill"], "dest": "home"},
    *ending_transitions(STATES),
]

BUSY_TEXT = {"identifying": ("正在查询您的就诊信息…", "Looking up your patient record…")}
IDLE = {"reading_card": "reading_card", "browsing": "choosing", "viewing_bill": "choosing", "done": "done",
        "failed": "failed"}

EMPTY = {
    "registrations": ("暂无挂号记录", "No registrations yet."),
    "payments": ("暂无缴费记录", "No payments yet."),
    "bills": ("暂无费用记录", "No bills yet."),
    "queue": ("您今天没有挂号，或尚未报到", "You have no registration today, or have not checked in."),
}


@dataclass
class QueryVisit(Session):
    """One patient's session; replaced on every return home (the wipe)."""

    tab: str = "registrations"
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tab -> rows as the server sent them
    bill_no: str = ""
    bill: dict[str, Any] | None = None

    def journal_data(self) -> dict[str, Any]:
        """The patient id, the tab and a bill number: what was shown stays on the glass."""
        return {**super().journal_data(), "tab": self.tab, "bill_no": self.bill_no or None}


class RecordQueries(JournaledService):
    """信息查询: read-only, needs only the ID-card reader."""

    WORKFLOW = WORKFLOW
    STATES = STATES
    TRANSITIONS = TRANSITIONS
    REQUIRED_DEVICES = {"id_card": ("身份证读卡器", "ID-card reader")}
    BUSY_TEXT = BUSY_TEXT
    IDLE = IDLE
    CANCELLABLE = frozenset(["reading_card", "browsing", "viewing_bill"])

    visit: QueryVisit

    def new_session(self) -> QueryVisit:
        return QueryVisit()

    # ---- inputs -------------------------------------------------------------------------------------

    def handle(self, intent: str, **kwargs: Any) -> None:
        if intent == "show_tab":  # a read on the same screen: nothing to resume, so no transition
            self._last_activity = self.clock()
            tab = str(kwargs.get("tab", ""))
            if self.state == "browsing" and tab in TAB_IDS:
                self.visit.tab = tab
                self.publish(self._busy_view(("正在查询…", "Looking it up…")))
                self._load_tab(tab)
                self.publish(self._view_for(self.state))
            return
        super().handle(intent, **kwargs)

    # ---- conditions and prepare callbacks -----------------------------------------------------------

    def _keep_bill(self, event: EventData) -> None:
        self.visit.bill_no = str(event.kwargs.get("bill_no", ""))

    def _bill_known(self, event: EventData) -> bool:
        return any(str(b.get("bill_no")) == self.visit.bill_no for b in self.visit.lists.get("bills", []))

    # ---- side effects -------------------------------------------------------------------------------

    def _enter_browsing(self, event: EventData) -> None:
        if event.event.name == "back":
            self.visit.notice = ("", "")
            return  # the bills list is as the patient left it
        self.visit.tab = TAB_IDS[0]
        self._load_tab(self.visit.tab)

    def _enter_viewing_bill(self, event: EventData) -> None:
        v = self.visit
        try:
            v.bill = self.backend.bill_detail(v.patient["patient_id"], v.bill_no)
            v.notice = ("", "")
        except (BackendError, BackendUnavailable):  # the list already holds the bill's items: show those
            v.bill = next((b for b in v.lists.get("bills", []) if str(b.get("bill_no")) == v.bill_no), None)
            v.notice = ("明细可能不是最新，请以人工窗口查询为准", "These details may not be the latest.")

    def _load_tab(self, tab: str) -> None:
        v = self.visit
        fetch: dict[str, Callable[[str], list[dict[str, Any]]]] = {
            "registrations": self.backend.registration_history, "payments": self.backend.payment_history,
            "bills": self.backend.bill_history, "queue": self.backend.queue}
        try:
            v.lists[tab] = list(fetch[tab](v.patient["patient_id"]) or [])
            v.notice = EMPTY[tab] if not v.lists[tab] else ("", "")
        except BackendError as exc:
            v.lists.pop(tab, None)
            v.notice = (exc.message, exc.message_en)
        except BackendUnavailable:
            v.lists.pop(tab, None)
            v.notice = OFFLINE

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
            text = BUSY_TEXT[state]
            return View("busy", {"text": text[0], "text_en": text[1]}, **base)
        if state == "browsing":
            return View("records", {"tabs": [{"id": t, "name": zh, "name_en": en} for t, zh, en in TABS],
                                    "tab": v.tab, "rows": v.lists.get(v.tab, [])},
                        message=msg, message_en=msg_en, **base)
        if state == "viewing_bill":
            return View("record_bill", {"bill": v.bill or {}}, message=msg, message_en=msg_en, can_back=True,
                        **base)
        return View("error", {}, message=msg, message_en=msg_en, **base)
