"""The headless demo: a real central server, simulated devices, the real kiosk window rendered offscreen, and
every built service clicked through like a patient would, one walk each:

registration (paid by QR in the WeChat Pay sandbox; the slip's QR must carry the visit code the HIS issued; then
"Show the way" to the clinic), appointment (booked and paid the same way, then cancelled with the fee going
back), the survey after the booking, check-in (of an appointment today when the HIS's window allows; otherwise
the refusal the patient would see), outpatient payment of the demo patient's pending bill, report printing on
the CUPS PDF queue, queries, the guidance map, and a technician at a printer out of paper.

Every screen is saved as a PNG named `NN-<service>-<screen>.png`, the registration slip as raw ESC/POS bytes and
as a picture, and `visit.json` says how each walk ended. Exit status 0 only if every walk reached its expected
end. The walks share the patient's steps (`Demo.identify`, `Demo.pay_as_phone`, `Demo.leave`); each walk is a
function that returns a line for the summary or raises `ScriptError`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from kiosk_app.config import KioskConfig
from kiosk_app.local_central import LocalCentral
from kiosk_app.phone import qr_on_screen
from kiosk_app.pin import SIMULATED_TECHNICIAN_PIN, hash_pin
from kiosk_app.scripted import (ScriptError, click, click_button, click_tile, has_button, press_key, visible_tiles,
                                wait_for_screen, wait_until)
from kiosk_app.simulated import SimulatedDevices, card_for

#: The reference HIS's cut-off for self-service cancellation, on the day before (HisRules.cancel_cutoff).
CANCEL_CUTOFF = time(18, 0)


@dataclass
class Demo:
    """The running pieces and the patient's shared steps."""

    app: Any
    kiosk: Any
    sims: SimulatedDevices
    central: LocalCentral
    lookup: Any  # a backend client of its own, for choosing a doctor with free places as a patient would see
    out: Path
    patient: dict[str, Any]
    service: str = ""
    shots: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def window(self) -> Any:
        return self.kiosk.window

    @property
    def screen(self) -> str:
        return str(self.window.view.screen)

    def shot(self, screen: str, timeout: float = 20.0) -> None:
        wait_for_screen(self.app, self.window, screen, timeout)
        name = f"{len(self.shots) + 1:02d}-{self.service}-{screen}.png"
        self.window.grab().save(str(self.out / name))
        self.shots.append(name)
        print(f"  screen {name}")

    def wait_for(self, screens: tuple[str, ...], timeout: float, what: str) -> str:
        wait_until(self.app, lambda: self.screen in screens, timeout, what)
        self.app.processEvents()
        return self.screen

    def tap_and_wait(self, tap: Callable[[], None], screens: tuple[str, ...], timeout: float, what: str) -> str:
        """Tap, then wait for a new screen among `screens` (the one tapped on may be among them)."""
        before = self.window.view
        tap()
        wait_until(self.app, lambda: self.window.view is not before and self.screen in screens, timeout, what)
        self.app.processEvents()
        return self.screen

    def open(self, tile: str) -> None:
        self.shot("home")
        wait_until(self.app, lambda: any(tile in text for _t, text in visible_tiles(self.window)), 30,
                   f"the {tile} tile to be available")
        click_tile(self.window, tile)

    def identify(self, tile: str, first: tuple[str, ...]) -> str:
        """Tap the service, lay the demo patient's ID card on the reader, and wait for the service's first
        screen; the patient's name is masked on the glass."""
        self.open(tile)
        self.shot("insert_card")
        self.sims.id_card.insert(card_for(self.patient))
        screen = self.wait_for((*first, "error"), 30, f"{tile} to identify the patient")
        if screen == "error":
            self.shot("error")
            raise ScriptError(f"{tile}: {self.window.view.message}")
        if self.patient["name"] in self.window.patient.text():
            raise ScriptError("the patient's full name is on the glass")
        return screen

    def pay_as_phone(self, results: tuple[str, ...]) -> str:
        """The phone scans the QR on the screen and pays in the WeChat Pay sandbox; wait for the result."""
        code_url = qr_on_screen(self.window)
        if not code_url.startswith("weixin://"):
            raise ScriptError(f"the payment QR on screen could not be read (got {code_url!r})")
        print("  the phone scans the QR and pays in the WeChat Pay sandbox")
        self.central.pay_as_phone(code_url)
        screen = self.wait_for((*results, "error"), 60, "the payment's result")
        self.shot(screen)
        if screen == "error":
            raise ScriptError(f"{self.service}: {self.window.view.message}")
        return screen

    def leave(self, answer: dict[str, int] | None = None) -> None:
        """"Done" on the last screen; the survey the hub offers after a visit that served is answered with
        `answer` or skipped; then home."""
        click_button(self.window, "返回首页" if has_button(self.window, "返回首页") else "取消")
        if self.wait_for(("survey", "home"), 20, "the survey or the home screen") == "survey":
            self.shot("survey")
            if answer:
                faces = self.window.screens["survey"].faces
                for question, score in answer.items():
                    click(faces[(question, score)])
                wait_until(self.app, lambda: self.window.view.data.get("answers") == answer, 10, "the faces")
                self.shot("survey")
                click_button(self.window, "提交")
                self.shot("survey_thanks")
                click_button(self.window, "返回首页")
            else:
                click_button(self.window, "跳过")
        wait_for_screen(self.app, self.window, "home")

    def show_way(self) -> str:
        """"查看路线 Show the way" on a result screen: the map from this kiosk to the place it names."""
        ways = self.window.view.data.get("ways") or []
        if not ways:
            raise ScriptError(f"no place on {self.screen!r} is on the map")
        click_button(self.window, "查看路线")
        self.shot("guidance_map")
        route = self.window.view.data.get("route") or {}
        if (route.get("destination") or {}).get("id") != ways[0]["place"]:
            raise ScriptError(f"the map shows {route.get('destination')}, not {ways[0]['place']}")
        return f"{route['destination']['name']} ({route.get('where', '')}, {route.get('minutes')} min)"

    def today(self) -> date:
        return datetime.now(ZoneInfo(self.kiosk.config.timezone)).date()


# ---- the walks ------------------------------------------------------------------------------------------------

def walk_registration(d: Demo) -> str:
    from drivers.receipt.render import decode_qr_codes, render_receipt

    d.identify("当日挂号", ("departments",))
    d.shot("departments")
    names = [text for _tile, text in visible_tiles(d.window)]
    click_tile(d.window, next((t.split()[0] for t in names if "急诊" not in t), ""))
    d.shot("doctors")
    click_tile(d.window)
    d.shot("slots")
    click_tile(d.window)
    d.shot("confirm")
    click_button(d.window, "确认挂号并支付")
    d.shot("payment")
    d.pay_as_phone(("done",))
    order = d.window.view.data["order"]
    receipt = d.sims.printer.wait_for_job(15)
    (d.out / "receipt.bin").write_bytes(receipt)
    render_receipt(receipt).save(d.out / "receipt.png")
    visit_code = order["registration"]["visit_code"]
    if decode_qr_codes(receipt) != [visit_code]:
        raise ScriptError(f"the slip's QR code reads {decode_qr_codes(receipt)!r}, the HIS issued {visit_code!r}")
    d.facts["registration"] = {"order_no": order["order_no"], "status": order["status"], "visit_code": visit_code,
                               "queue_no": order["registration"]["queue_no"],
                               "department": (order.get("department") or {}).get("code")}
    way = d.show_way()
    d.leave()
    return f"order {order['order_no']}, queue number {order['registration']['queue_no']}, slip QR = visit code; " \
           f"the way to {way}"


def _doctor_on(d: Demo, day: date, avoid: set[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A general-clinic doctor with free places on `day`, and the department, outside the departments in
    `avoid` (the HIS allows one registration per department and day)."""
    for dept in d.lookup.appointment_departments("general"):
        if dept["code"] in avoid:
            continue
        for doctor in d.lookup.appointment_doctors(dept["code"]):
            if doctor.get("remaining", 0) <= 0:
                continue
            dates = d.lookup.appointment_dates(dept["code"], doctor["code"])["dates"]
            if not any(x["date"] == day.isoformat() and x["remaining"] > 0 for x in dates):
                continue
            slots = d.lookup.appointment_slots(dept["code"], doctor["code"], day.isoformat())
            if any(slot.get("remaining", 0) > 0 for slot in slots):  # today: only the times still to come
                return doctor, dept
    return None


def _book(d: Demo, day: date, doctor: dict[str, Any], dept: dict[str, Any]) -> dict[str, Any]:
    """Book `doctor` on `day` found by pinyin initials on the letter keyboard, and pay by QR."""
    d.identify("预约挂号", ("appt_departments",))
    d.shot("appt_departments")
    click_button(d.window, "按医生查找")
    d.shot("doctor_search")
    initials = next(x["initials"] for x in d.lookup.search_doctors(doctor["name"]) if x["code"] == doctor["code"])
    for letter in initials:
        press_key(d.window, letter)
    wait_until(d.app, lambda: d.window.view.data.get("query") == initials, 10, "the initials")
    d.shot("doctor_search")
    click_tile(d.window, f"{doctor['name']}  {doctor.get('title') or ''}".rstrip() + f" {dept['name']}")
    d.shot("appt_dates")
    click_tile(d.window, f"{day.month}月{day.day}日")
    d.shot("appt_slots")
    click_tile(d.window, "余号")
    d.shot("appt_confirm")
    click_button(d.window, "确认预约并支付")
    if d.wait_for(("appt_payment", "error"), 30, "the payment screen") == "error":
        d.shot("error")
        raise ScriptError(f"appointment: {d.window.view.message}")
    d.shot("appt_payment")
    d.pay_as_phone(("appt_done",))
    order = dict(d.window.view.data["order"])
    d.sims.printer.wait_for_job(15)
    return order


def walk_appointment(d: Demo) -> str:
    """Book the nearest day that can still be cancelled here, pay, answer the survey; then cancel it."""
    now = datetime.now(ZoneInfo(d.kiosk.config.timezone))
    early = datetime.combine(now.date(), CANCEL_CUTOFF, now.tzinfo) - now > timedelta(minutes=10)
    day = now.date() + timedelta(days=1 if early else 2)
    found = _doctor_on(d, day, set())
    if found is None:
        raise ScriptError(f"no doctor has free places on {day}")
    order = _book(d, day, *found)
    d.service = "survey"
    d.leave(answer={"overall": 5, "ease": 4, "wayfinding": 5})
    d.service = "appointment"
    d.identify("预约挂号", ("appt_departments",))
    click_button(d.window, "取消预约")
    d.shot("appt_cancel_list")
    click_tile(d.window, f"{day.month}月{day.day}日 星期{'一二三四五六日'[day.weekday()]}  {order['slot']['start']}")
    d.shot("appt_cancel_confirm")
    click_button(d.window, "确认取消预约")
    if d.wait_for(("appt_cancelled", "error"), 60, "the cancellation") == "error":
        d.shot("error")
        raise ScriptError(f"cancel: {d.window.view.message}")
    d.shot("appt_cancelled")
    d.leave()
    return f"booked {order['order_no']} for {day}, paid by QR, surveyed, then cancelled with the fee refunded"


def walk_checkin(d: Demo) -> str:
    """Check in an appointment today if the HIS's window allows it; else show what the patient is told."""
    today = d.today()
    avoid = {d.facts.get("registration", {}).get("department") or ""}
    found = _doctor_on(d, today, avoid)
    if found is not None:
        _book(d, today, *found)
        d.leave()
    d.identify("取号报到", ("checkin_list",))
    d.shot("checkin_list")
    listed = d.window.view.data.get("appointments") or []
    if not listed:
        return f"no appointment today can be checked in (the HIS has no free place left today): " \
               f"the list says {d.window.view.message!r}"
    screen = d.tap_and_wait(lambda: click_tile(d.window, listed[0]["start"]),
                            ("checkin_done", "checkin_list", "error"), 30, "the check-in")
    d.shot(screen)
    if screen == "checkin_list":  # outside the window: the refusal over the list
        refusal = d.window.view.message
        d.leave()
        return f"refused by the HIS's check-in window: {refusal!r}"
    if screen == "error":
        raise ScriptError(f"check-in: {d.window.view.message}")
    queue = d.window.view.data.get("queue") or {}
    way = d.show_way() if d.window.view.data.get("ways") else "no map"
    d.leave()
    return f"checked in: number {queue.get('queue_no')}, {queue.get('ahead')} ahead; the way to {way}"


def walk_outpatient_payment(d: Demo) -> str:
    screen = d.identify("门诊缴费", ("bills", "bill_detail"))
    d.shot(screen)
    if screen == "bills":
        if not d.window.view.data.get("bills"):
            raise ScriptError("the demo patient has no pending bill")
        click_tile(d.window)
        d.shot("bill_detail")
    click_button(d.window, "去缴费")
    d.shot("bill_checkout")
    click_button(d.window, "自费支付")
    d.shot("bill_payment")
    d.pay_as_phone(("bill_done",))
    order = d.window.view.data["order"]
    places = [p["place"] for p in d.window.view.data.get("places") or []]
    d.sims.printer.wait_for_job(15)
    d.leave()
    return f"paid {order['order_no']} ({order['amount_fen'] / 100:.2f} yuan) by QR; go to: {', '.join(places)}"


def walk_reports(d: Demo) -> str:
    before = len(list(d.sims.cups.output_dir.glob("*.pdf"))) if d.sims.cups else 0
    d.identify("报告打印", ("documents",))
    d.shot("documents")
    selected = d.window.view.data.get("selected") or []
    if not selected:
        raise ScriptError("nothing to print for the demo patient")
    click_button(d.window, f"打印 {len(selected)} 份")
    d.shot("print_result", 180)
    jobs = d.window.view.data.get("jobs") or []
    printed = [j for j in jobs if j.get("status") == "printed"]
    if not printed:
        raise ScriptError(f"nothing came out of the report printer: {jobs}")
    assert d.sims.cups is not None
    wait_until(d.app, lambda: len(list(d.sims.cups.output_dir.glob("*.pdf"))) >= before + len(printed), 60,
               "the cups-pdf output")
    d.leave()
    return f"{len(printed)} of {len(jobs)} documents printed on the CUPS PDF queue"


def walk_queries(d: Demo) -> str:
    d.identify("信息查询", ("records",))
    d.shot("records")
    tabs = [t["id"] for t in d.window.view.data.get("tabs") or []]
    for tab in tabs[1:]:
        click(d.window.screens["records"].tabs[tab])
        wait_until(d.app, lambda t=tab: d.window.view.data.get("tab") == t, 20, f"the {tab} tab")
        d.shot("records")
    d.leave()
    return f"tabs {', '.join(tabs)}"


def walk_guidance(d: Demo) -> str:
    d.open("就诊导航")
    d.shot("guidance_places")
    click_button(d.window, "内科")
    wait_until(d.app, lambda: any("神经内科" in text for _t, text in visible_tiles(d.window)), 10,
               "the clinics of internal medicine")  # new tiles show one pass of the event loop later
    click_tile(d.window, "神经内科")
    d.shot("guidance_map")
    route = d.window.view.data.get("route") or {}
    if not route.get("steps"):
        raise ScriptError("the map shows no route")
    d.leave()
    return f"{route['destination']['name']}: {route['where']}, {route['distance_m']} m, {len(route['steps'])} steps"


def walk_cards(d: Demo) -> str:
    """刷脸 in front of the simulated camera (the reference face platform knows the demo patient's drawn face),
    an e-health card applied for and shown as a QR, a visit card bound by its barcode; then the new visit card
    alone identifies the patient in another service."""
    d.open("办卡绑卡")
    d.shot("insert_card")
    wait_until(d.app, lambda: has_button(d.window, "刷脸识别"), 30, "the face button (the camera reports in)")
    click_button(d.window, "刷脸识别")
    wait_until(d.app, lambda: d.screen in ("card_menu", "error") or bool(d.window.view.message), 60,
               "刷脸 to identify the patient")  # a notice on the insert-card screen: the camera's prompt
    if d.screen != "card_menu":
        d.shot(d.screen)
        raise ScriptError(f"刷脸: {d.window.view.message}")
    d.shot("card_menu")
    wait_until(d.app, lambda: any("就诊卡" in text for _t, text in visible_tiles(d.window)), 10, "the card tiles")
    ehealth = "the demo patient's e-health card was issued elsewhere (the tile says so)"
    if d.window.view.data.get("ehealth") != "elsewhere":
        click_tile(d.window, "电子健康卡")
        d.shot("ehealth_card", 30)
        code = qr_on_screen(d.window)
        if len(code) != 64:
            raise ScriptError(f"the e-health card's QR on screen could not be read (got {len(code)} characters)")
        ehealth = "e-health card QR on screen and on the slip"
        click_button(d.window, "返回办卡绑卡")
        d.wait_for(("card_menu",), 20, "the card menu")
    click_tile(d.window, "绑定就诊卡")
    d.shot("scan_visit_card")
    card_no = "6200001234"
    d.sims.scanner.scan(card_no)
    wait_until(d.app, lambda: d.screen == "card_menu" and bool(d.window.view.data.get("visit_cards")), 30,
               "the visit card to be bound")
    d.shot("card_menu")
    d.leave()
    d.open("信息查询")
    d.shot("insert_card")
    d.sims.scanner.scan(card_no)
    if d.wait_for(("records", "error"), 30, "the visit card to identify the patient") != "records":
        raise ScriptError(f"visit card: {d.window.view.message}")
    d.shot("records")
    d.leave()
    return f"identified by 刷脸; {ehealth}; visit card bound, then identified the patient"


def walk_technician(d: Demo) -> str:
    """The receipt printer runs out of paper: registration switches off; a technician self-tests, refills."""
    poll = d.kiosk.config.device_poll_seconds + 5
    d.sims.printer.paper_out = True
    wait_until(d.app, lambda: not d.window.screens["home"].tiles["registration"].isEnabled(), poll,
               "same-day registration to switch off")
    d.shot("home")
    d.kiosk.send("diag_open")  # what five taps on the header send
    d.shot("diag_pin")
    d.kiosk.send("diag_pin", pin=SIMULATED_TECHNICIAN_PIN)
    d.shot("diag")
    d.kiosk.send("diag_self_test", role="camera")
    wait_until(d.app, lambda: d.window.screens["diag"].image.isVisible(), 20, "the camera test")
    d.shot("diag")
    d.sims.printer.paper_out = False
    d.kiosk.send("diag_exit")
    wait_until(d.app, lambda: d.window.screens["home"].tiles["registration"].isEnabled(), poll,
               "same-day registration to come back")
    return "registration switched off without paper and back on after the refill"


WALKS: list[tuple[str, Callable[[Demo], str]]] = [
    ("registration", walk_registration), ("appointment", walk_appointment), ("checkin", walk_checkin),
    ("outpatient_payment", walk_outpatient_payment), ("reports", walk_reports), ("queries", walk_queries),
    ("guidance", walk_guidance), ("cards", walk_cards), ("technician", walk_technician),
]


def _back_home(d: Demo) -> None:
    """After a walk failed: leave whatever is on the glass, so the next walk starts at home."""
    for _ in range(3):
        if d.screen == "home":
            return
        for text in ("返回首页", "取消", "跳过"):
            if has_button(d.window, text):
                click_button(d.window, text)
                break
        try:
            wait_until(d.app, lambda: d.screen == "home", 10, "home")
        except ScriptError:
            continue


def run_demo(out: Path, keep_work: bool = False) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from central.his.seed import DEMO_PATIENT
    from kiosk_app.app import Kiosk
    from kiosk_app.backend_client import HttpBackend

    def qt_messages(_kind: Any, _context: Any, message: str) -> None:
        if "propagateSizeHints" not in message:  # the offscreen platform's note on every window resize
            print(f"qt: {message}")

    qInstallMessageHandler(qt_messages)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    app = QApplication.instance() or QApplication([])
    central = sims = kiosk = lookup = None
    try:
        print("starting kiosk-central (SQLite, reference HIS, WeChat Pay sandbox) ...")
        central = LocalCentral(work / "central").start()
        credentials = central.provision("KIOSK-DEMO")
        sims = SimulatedDevices(work / "devices")
        devices = sims.start()
        config = KioskConfig(credentials=credentials, data_dir=work / "kiosk", devices=devices, fullscreen=False,
                             technician_pin_hash=hash_pin(SIMULATED_TECHNICIAN_PIN))
        kiosk = Kiosk(config, app)
        kiosk.window.resize(1920, 1080)
        kiosk.start(show=True)
        lookup = HttpBackend(credentials)
        demo = Demo(app, kiosk, sims, central, lookup, out, dict(DEMO_PATIENT))
        results: dict[str, dict[str, Any]] = {}
        for service, walk in WALKS:
            print(f"walking {service} ...")
            demo.service = service
            try:
                outcome = walk(demo)
                results[service] = {"ok": True, "outcome": outcome}
                print(f"  {service}: {outcome}")
            except (ScriptError, RuntimeError, TimeoutError, KeyError, StopIteration) as exc:
                results[service] = {"ok": False, "outcome": f"{type(exc).__name__}: {exc}"}
                print(f"  {service} FAILED: {exc}")
                _back_home(demo)
        summary = {**demo.facts.get("registration", {}), "walks": results, "screens": demo.shots,
                   "receipt": ["receipt.bin", "receipt.png"]}
        (out / "visit.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
        failed = [name for name, result in results.items() if not result["ok"]]
        print(f"screens and receipt written to {out}")
        if failed:
            print(f"demo failed: {', '.join(failed)} did not reach the expected end")
            return 1
        print(f"every walk reached its end: {', '.join(results)}")
        return 0
    except (ScriptError, RuntimeError, TimeoutError) as exc:
        print(f"demo failed: {exc}")
        return 1
    finally:
        if lookup:
            lookup.close()
        if kiosk:
            kiosk.stop()
        if sims:
            sims.stop()
        if central:
            central.stop()
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
