"""What an ESC/POS printer's DLE EOT answers mean for the terminal.

DLE EOT n (10 04 n) is answered with one byte per query without disturbing a job: n=1 printer status,
n=2 offline cause, n=3 error cause, n=4 paper roll sensor. Every valid answer has bits 1 and 4 set and
bits 0 and 7 clear; anything else is a garbled line, reported as such rather than guessed at.
"""
from __future__ import annotations

from drivers.health import Health

QUERIES = (1, 2, 3, 4)


def is_status_byte(b: int) -> bool:
    return b & 0x93 == 0x12


def health_from_status(answers: dict[int, int]) -> Health:
    """Map the four answers to a health value; the first fault found wins, in the order a patient feels it."""
    bad = {n: b for n, b in answers.items() if not is_status_byte(b)}
    if bad:
        shown = ", ".join(f"n={n}: 0x{b:02X}" for n, b in sorted(bad.items()))
        return Health.degraded("status_garbled", f"打印机状态应答无效 / invalid status answer ({shown})")
    offline_cause, error_cause, paper = answers.get(2, 0x12), answers.get(3, 0x12), answers.get(4, 0x12)
    if paper & 0x60 or offline_cause & 0x20:
        return Health.fault("paper_out", "凭条纸已用完 / receipt paper is out")
    if offline_cause & 0x04:
        return Health.fault("cover_open", "打印机盖未关好 / printer cover is open")
    if error_cause & 0x08:
        return Health.fault("cutter_error", "切纸刀故障 / autocutter error")
    if error_cause & 0x20 or offline_cause & 0x40:
        return Health.fault("printer_error", "打印机故障 / printer error")
    if answers.get(1, 0x12) & 0x08:
        return Health.fault("offline", "打印机离线 / printer is offline")
    if paper & 0x0C:
        return Health.degraded("paper_low", "凭条纸即将用完 / receipt paper is low")
    return Health.ok()
