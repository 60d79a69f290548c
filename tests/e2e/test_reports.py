"""Report printing (报告打印) through the real Qt app, a real kiosk-central process (reference HIS, print counts)
and the report printer on a private cupsd with a cups-pdf queue: the demo patient prints one report, the PDF
lands in the queue's output, and the server counts it once, only after CUPS reported the job completed."""
from __future__ import annotations

import json

import pytest

from central.his.seed import DEMO_PATIENT, DEMO_PATIENT_ID
from kiosk_app.scripted import (click, click_button, click_tile, leave_after_visit, visible_tiles, wait_for_screen,
                                 wait_until)
from kiosk_app.simulated import card_for
from tests.e2e.conftest import api

pytestmark = pytest.mark.e2e


@pytest.fixture
def terminal_id() -> str:
    return "KIOSK-E2E-BG"


def test_print_one_report_on_the_cups_queue_and_it_is_counted_once(central, kiosk, qapp):
    k, sims = kiosk
    documents = api(central, k, f"/patients/{DEMO_PATIENT_ID}/documents")["documents"]
    printable = [d for d in documents if d["can_print"]]
    assert printable, "the demo patient has a report ready to print"
    before = len(list(sims.cups.output_dir.glob("*.pdf")))

    wait_for_screen(qapp, k.window, "home")
    wait_until(qapp, lambda: any(t["id"] == "reports" and t["available"]
                                 for t in k.window.view.data.get("services", [])), 30, "the report printer")
    click_tile(k.window, "报告打印")
    wait_for_screen(qapp, k.window, "insert_card")
    sims.id_card.insert(card_for(DEMO_PATIENT))
    wait_for_screen(qapp, k.window, "documents", 30)
    assert "李*英" in k.window.patient.text() and DEMO_PATIENT["name"] not in k.window.patient.text()
    selected = k.window.view.data["selected"]
    assert sorted(selected) == sorted([d["kind"], d["doc_no"]] for d in printable)  # ticked for the patient
    while len(k.window.view.data["selected"]) > 1:  # untick all but one with the finger, page by page
        wait_until(qapp, lambda: bool(visible_tiles(k.window)), 10, "the tiles")  # new tiles show one loop later
        ticked = [tile for tile, text in visible_tiles(k.window) if "已选择" in text]
        if len(ticked) > (1 if len(ticked) == len(k.window.view.data["selected"]) else 0):
            count = len(k.window.view.data["selected"])
            click(ticked[-1])
            wait_until(qapp, lambda c=count: len(k.window.view.data["selected"]) == c - 1, 10, "the untick")
        else:
            click_button(k.window, "下一页")
    kind, doc_no = k.window.view.data["selected"][0]
    wanted = next(d for d in printable if (d["kind"], d["doc_no"]) == (kind, doc_no))
    click_button(k.window, "打印 1 份")
    wait_for_screen(qapp, k.window, "print_result", 120)
    jobs = k.window.view.data["jobs"]
    assert [(j["doc_no"], j["status"]) for j in jobs] == [(wanted["doc_no"], "printed")], jobs

    # the paper: cups-pdf wrote the job out
    wait_until(qapp, lambda: len(list(sims.cups.output_dir.glob("*.pdf"))) > before, 30, "the cups-pdf output")
    # the count: once, and the kiosk may not print it again
    after = next(d for d in api(central, k, f"/patients/{DEMO_PATIENT_ID}/documents")["documents"]
                 if d["doc_no"] == wanted["doc_no"])
    assert after["printed_count"] == wanted["printed_count"] + 1 and not after["can_print"]

    leave_after_visit(qapp, k.window)
    journal = json.dumps(k.journal.entries(), ensure_ascii=False)
    assert DEMO_PATIENT["name"] not in journal and DEMO_PATIENT["id_number"] not in journal
    assert wanted["title"] not in journal and wanted["doc_no"] in journal
