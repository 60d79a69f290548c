"""The heavy driver libraries load when a device is opened, not when the kiosk imports its drivers, and
python-escpos's printer database is parsed once and read from the cache afterwards.

Each check runs in a fresh interpreter: in this one, other tests have long imported everything."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.lazy_module import LazyModule
from drivers.receipt.escpos_cache import pickle_name

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("cv2", "escpos.printer", "escpos.capabilities", "reportlab", "smartcard")
DEVICES = {
    "id_card": {"driver": "serial", "port": "/dev/null"},
    "scanner": {"driver": "serial", "port": "/dev/null"},
    "camera": {"driver": "opencv", "source": "{video}"},
    "receipt_printer": {"driver": "network", "host": "127.0.0.1", "port": 9},
    "report_printer": {"driver": "cups", "queue": "Reports"},
    "pinpad": {"driver": "serial", "port": "/dev/null"},
}


def run_python(code: str, tmp_path: Path) -> dict:
    """Run `code` in a fresh interpreter with its own cache and temp directories; it prints one JSON line."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp")}
    env.pop("ESCPOS_CAPABILITIES_PICKLE_DIR", None)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_configured_devices_are_built_without_their_heavy_libraries(tmp_path: Path) -> None:
    video = tmp_path / "face.avi"
    from drivers.camera.synthetic import face_video
    face_video(video, count=3)
    devices = json.dumps(DEVICES).replace("{video}", str(video))
    seen = run_python(f"""
import json, sys
from kiosk_app.devices import make_device
devices = {{role: make_device(role, json.loads({devices!r})) for role in {sorted(DEVICES)!r}}}
built = [m for m in {HEAVY!r} if m in sys.modules]
devices["camera"].open()
devices["receipt_printer"].open()
print(json.dumps({{"built": built, "opened": [m for m in {HEAVY!r} if m in sys.modules],
                  "frame": list(devices["camera"].read_frame().shape)}}))
""", tmp_path)
    assert seen["built"] == []  # constructing a driver imports none of them
    assert {"cv2", "escpos.printer"} <= set(seen["opened"])  # opening the camera / receipt printer does
    assert "reportlab" not in seen["opened"]  # only a report printer's self-test page draws a PDF
    assert len(seen["frame"]) == 3


def test_escpos_database_is_parsed_once_then_read_from_the_cache(tmp_path: Path) -> None:
    code = """
import json, os
from drivers.receipt.document import QrCode, Text
from drivers.receipt.printer import render_document
data = render_document([Text("就诊码 V1", bold=True), QrCode("V1")])
import escpos.capabilities as caps
print(json.dumps({"parsed": caps.full_load, "bytes": data.hex(), "scratch": os.listdir(os.environ["TMPDIR"])}))
"""
    cached = tmp_path / "cache" / "hospital-kiosk" / "escpos" / pickle_name()
    first = run_python(code, tmp_path)
    assert first["parsed"] is True and cached.is_file()
    assert not [d for d in first["scratch"] if d.startswith("escpos-")]  # the scratch directory is removed
    second = run_python(code, tmp_path)
    assert second["parsed"] is False  # read from the pickle
    assert second["bytes"] == first["bytes"]  # the same slip, byte for byte

    cached.write_bytes(b"not a pickle")  # damaged (disk full when it was written): parsed again, replaced
    later = time.time() + 5
    os.utime(cached, (later, later))
    third = run_python(code, tmp_path)
    assert third["parsed"] is True and third["bytes"] == first["bytes"]
    assert cached.read_bytes() != b"not a pickle"


def test_lazy_module_imports_on_first_attribute() -> None:
    lazy = LazyModule("json")
    assert not lazy.loaded and "lazy module 'json'" in repr(lazy)
    assert lazy.dumps([1]) == "[1]"
    assert lazy.loaded and lazy.load() is sys.modules["json"]
    with pytest.raises(ModuleNotFoundError):
        LazyModule("no_such_module_here").anything
