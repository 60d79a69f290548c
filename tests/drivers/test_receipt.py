"""The network receipt printer against the recording TCP printer, read back through the ESC/POS decoder."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drivers.health import Status
from drivers.receipt.document import Feed, QrCode, Rule, Text
from drivers.receipt.printer import COLUMNS, PAPER_DOTS, NetworkReceiptPrinter, PrinterError, render_document
from drivers.receipt.render import decode_qr_codes, extract_rasters, parse, printed_text, render_receipt, Cut
from drivers.receipt.simulator import PrinterListener

pytestmark = pytest.mark.timeout(60)

VISIT_CODE = "V20260314-0028-内科"
SLIP = [
    Text("示范市第一人民医院", align="center", bold=True, size=2),
    Text("当日挂号凭条", align="center", bold=True),
    Rule(),
    Text("患者：李*英"),
    Text("科室：心血管内科  医生：王医生 主任医师"),
    Text("12 号", align="center", bold=True, size=2),
    QrCode(VISIT_CODE),
    Text(f"就诊码 {VISIT_CODE}", align="center"),
    Text("请按时到诊区候诊，过号请到分诊台报到", align="right"),
    Feed(2),
]


@pytest.fixture
def listener():  # type: ignore[no-untyped-def]
    with PrinterListener() as lst:
        yield lst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_profile_knows_the_80mm_paper() -> None:
    from escpos.printer import Dummy
    from drivers.receipt.printer import PROFILE_NAME
    profile = Dummy(profile=PROFILE_NAME).profile
    assert int(profile.profile_data["media"]["width"]["pixels"]) == PAPER_DOTS == 576
    assert profile.get_columns(0) == COLUMNS == 48


def test_printed_slip_reads_back(listener: PrinterListener, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    printer = NetworkReceiptPrinter("127.0.0.1", listener.port)
    assert printer.health().status is Status.OK
    printer.print_document(SLIP)
    job = listener.wait_for_job(5)

    assert job.startswith(b"\x1b@\x1c&")  # initialise, Chinese mode on
    for block in SLIP:
        if isinstance(block, Text):
            assert block.text.encode("gb18030") in job
    assert b"\x1ba\x01\x1bE\x01\x1d!\x11" + "示范市第一人民医院".encode("gb18030") in job
    assert b"\x1dv0" in job and job.endswith(b"\x1dV\x00")
    assert isinstance(parse(job)[-1], Cut)

    assert decode_qr_codes(job) == [VISIT_CODE]
    text = printed_text(job)
    for line in ("示范市第一人民医院", "当日挂号凭条", "-" * 48, "患者：李*英", "12 号", f"就诊码 {VISIT_CODE}",
                 "请按时到诊区候诊，过号请到分诊台报到"):
        assert line in text.splitlines()

    png = tmp_path / "slip.png"
    render_receipt(job).save(png)
    with Image.open(png) as img:
        assert img.width == 576 and img.height > 400
        pixels = np.asarray(img.convert("L"))
    assert pixels[0].min() == 255  # white paper at the top
    assert (pixels < 128).any()
    assert "width" not in capsys.readouterr().out  # python-escpos prints width warnings without a profile


def test_each_document_is_one_job(listener: PrinterListener) -> None:
    printer = NetworkReceiptPrinter("127.0.0.1", listener.port)
    printer.print_document([Text("第一张")])
    printer.print_document([Text("第二张")])
    assert "第一张" in printed_text(listener.wait_for_job(5))
    assert "第二张" in printed_text(listener.wait_for_job(5))
    with pytest.raises(TimeoutError):
        listener.wait_for_job(0.3)
    assert len(listener.jobs) == 2  # health checks and empty connections are not jobs


def test_qr_raster_is_square_and_within_the_paper(listener: PrinterListener) -> None:
    NetworkReceiptPrinter("127.0.0.1", listener.port).print_document([QrCode("HELLO", size=6)])
    rasters = extract_rasters(listener.wait_for_job(5))
    assert len(rasters) == 1 and rasters[0].dtype == bool
    assert rasters[0].shape[1] <= 576 and rasters[0].any()
    assert decode_qr_codes(render_document([QrCode("HELLO")])) == ["HELLO"]


def test_printing_to_a_closed_port_is_a_printer_error() -> None:
    printer = NetworkReceiptPrinter("127.0.0.1", free_port(), timeout=1.0)
    health = printer.health()
    assert health.status is Status.FAULT and health.reason == "disconnected"
    with pytest.raises(PrinterError, match="cannot connect"):
        printer.print_document(SLIP)


def test_printer_that_hangs_up_mid_job_is_a_printer_error() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # so the job cannot vanish into buffers
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def hang_up() -> None:
        conn, _ = server.accept()
        conn.recv(1000)  # the job has started
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # RST: the printer went away

    threading.Thread(target=hang_up, daemon=True).start()
    printer = NetworkReceiptPrinter("127.0.0.1", server.getsockname()[1], timeout=2.0)
    big = [Text("凭条" * 4_000_000)]  # 16 MB: more than any socket buffer holds
    try:
        with pytest.raises(PrinterError, match="mid-job"):
            printer.print_document(big)
    finally:
        server.close()


def test_bad_block_is_a_printer_error() -> None:
    with pytest.raises(PrinterError, match="laid out"):
        NetworkReceiptPrinter("127.0.0.1", 9).print_document([Text("x", align="middle")])


def test_status_query_answers_follow_the_paper_switch(listener: PrinterListener) -> None:
    from escpos.printer import Network
    p = Network("127.0.0.1", listener.port, timeout=2)
    p.open()
    try:
        assert p.paper_status() == 2
        listener.paper_out = True
        assert p.paper_status() == 0
    finally:
        p.close()


def test_decoder_survives_unknown_and_truncated_commands() -> None:
    junk = (b"\x1b@\x1bz\x01\x1d\xff\x1c\x99abc\n\x1b" + bytes(range(256)) + b"\x1dv0\x00\xff\xff\xff\xff\x01"
            + "中文".encode("gb18030")[:3] + b"\x1d(k\xff\xff\x1dV")
    for cut in range(0, len(junk), 7):
        part = junk[:cut]
        printed_text(part)
        extract_rasters(part)
        decode_qr_codes(part)
        assert render_receipt(part).width == 576
    assert "abc" in printed_text(junk)
