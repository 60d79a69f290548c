"""Alert rules and the alert life cycle: raised → (acknowledged) → resolved, with history.

The rules look at a terminal's latest beat (``conditions``) or at the clock (``silent``):

| rule | fires when | severity |
|---|---|---|
| ``silent`` | no beat for ``silent_intervals`` × the terminal's interval | critical |
| ``device_fault`` | a device (or the kiosk app itself) reports fault, other than paper out | critical |
| ``paper`` | a printer reports paper low (warning) or paper out (critical) | warning / critical |
| ``error_rate`` | one beat counts at least ``error_spike`` errors | warning |
| ``queue_backlog`` | the offline queue holds ``queue_backlog_depth`` messages, or its oldest is older than ``queue_backlog_age_s`` | warning |

A condition that holds raises one alert per (terminal, key) and keeps it; when the condition is gone the
rule resolves it (an acknowledged alert too). A condition that comes back later is a new alert.

Every alert carries its text in Chinese (``message_zh``, what the hospital's IT staff read first) and English
(``message``), written here where the condition is known, so the console, reports and ``/metrics`` readers do
not each have to guess a sentence from the key. Device and fault names come from ``DEVICE_NAMES`` and
``FAULT_REASONS``; an unknown reason code is shown as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.fleet.models import AlertStatus, FleetAlert, FleetAlertLog
from central.fleet.settings import FleetSettings

BEAT_RULES = ("device_fault", "paper", "error_rate", "queue_backlog")
RULES = ("silent", *BEAT_RULES)


#: Device roles as IT reads them: (Chinese, English). The console's labels use the same table.
DEVICE_NAMES: dict[str, tuple[str, str]] = {
    "id_card": ("身份证阅读器", "ID-card reader"),
    "pcsc": ("社保卡/银行卡读卡器", "Card reader"),
    "scanner": ("扫码器", "Scanner"),
    "camera": ("人脸摄像头", "Face camera"),
    "receipt_printer": ("凭条打印机", "Receipt printer"),
    "report_printer": ("报告打印机", "Report printer"),
    "pinpad": ("密码键盘", "PIN pad"),
    "app": ("自助应用", "Kiosk app"),
}

#: The drivers' fault reason codes (``drivers.health``) in Chinese.
FAULT_REASONS: dict[str, str] = {
    "disconnected": "未连接", "offline": "离线", "no_answer": "无应答", "not_started": "未启动",
    "open_failed": "无法打开", "cover_open": "机盖打开", "cutter_error": "切刀故障", "paper_out": "缺纸",
    "paper_low": "纸将尽", "printer_error": "打印机错误", "tampered": "被拆动", "sam_fault": "安全模块故障",
    "sam_status": "安全模块状态异常", "card_mute": "卡片无响应", "reader_unavailable": "读卡器不可用",
    "pcscd_unavailable": "读卡服务不可用", "cups_unavailable": "打印服务不可用", "no_queue": "无打印队列",
    "no_frames": "无图像", "blank_frame": "图像空白", "invalid_frame": "图像无效",
    "no_working_key": "无工作密钥", "pad_status": "键盘状态异常", "protocol_error": "通讯协议错误",
    "status_garbled": "状态数据错乱", "no_status": "无状态应答", "self_test_failed": "自检失败",
    "self_test_refused": "拒绝自检", "no_self_test_reply": "自检无应答",
    "health_check_failed": "健康检查失败", "config": "配置错误",
}


def device_zh(name: str) -> str:
    return DEVICE_NAMES.get(name, (name, name))[0]


def device_en(name: str) -> str:
    return DEVICE_NAMES.get(name, (name, name))[1]


@dataclass(frozen=True)
class Condition:
    rule: str
    key: str
    severity: str
    message: str  # English
    message_zh: str


def conditions(*, devices: dict[str, dict[str, str]], app_running: bool, errors: int, queue_depth: int,
               queue_oldest_s: float | None, limits: FleetSettings) -> list[Condition]:
    """What is wrong with a terminal according to one beat."""
    found: list[Condition] = []
    if not app_running:
        found.append(Condition("device_fault", "device_fault:app", "critical", "kiosk application is not running",
                               "自助应用未运行"))
    for name, health in sorted(devices.items()):
        status, reason = health.get("status", ""), health.get("reason", "")
        if reason == "paper_out":
            found.append(Condition("paper", f"paper_out:{name}", "critical", f"{device_en(name)}: paper out",
                                   f"{device_zh(name)}缺纸"))
        elif reason == "paper_low":
            found.append(Condition("paper", f"paper_low:{name}", "warning", f"{device_en(name)}: paper low",
                                   f"{device_zh(name)}纸将尽"))
        elif status == "fault":
            why_zh = FAULT_REASONS.get(reason, reason) if reason else "未说明原因"
            found.append(Condition("device_fault", f"device_fault:{name}", "critical",
                                   f"{device_en(name)} in fault: {reason or 'no reason given'}",
                                   f"{device_zh(name)}故障：{why_zh}"))
    if errors >= limits.error_spike:
        found.append(Condition("error_rate", "error_rate", "warning", f"{errors} errors in one heartbeat interval",
                               f"一个心跳周期内出现 {errors} 个错误"))
    if queue_depth >= limits.queue_backlog_depth or (queue_oldest_s or 0) >= limits.queue_backlog_age_s:
        age = f", oldest {queue_oldest_s:.0f} s" if queue_oldest_s else ""
        age_zh = f"，最早一条已等待 {queue_oldest_s:.0f} 秒" if queue_oldest_s else ""
        found.append(Condition("queue_backlog", "queue_backlog", "warning",
                               f"offline queue holds {queue_depth} messages{age}",
                               f"离线队列积压 {queue_depth} 条消息{age_zh}"))
    return found


def history(session: Session, alert_id: int, at: datetime, action: str, actor: str, detail: str = "") -> None:
    session.add(FleetAlertLog(alert_id=alert_id, at=at, action=action, actor=actor, detail=detail[:300]))


def reconcile(session: Session, terminal_id: str, found: list[Condition], rules: tuple[str, ...],
              now: datetime) -> tuple[int, int]:
    """Make the terminal's active alerts of ``rules`` match ``found``: raise the new, resolve the gone.
    Returns (raised, resolved)."""
    active = {a.key: a for a in session.scalars(select(FleetAlert).where(
        FleetAlert.terminal_id == terminal_id, FleetAlert.status.in_(AlertStatus.ACTIVE),
        FleetAlert.rule.in_(rules)))}
    wanted = {c.key: c for c in found if c.rule in rules}
    raised = resolved = 0
    for key, condition in wanted.items():
        if key in active:
            continue
        alert = FleetAlert(terminal_id=terminal_id, rule=condition.rule, key=key, severity=condition.severity,
                           status=AlertStatus.OPEN, message=condition.message[:300],
                           message_zh=condition.message_zh[:300], raised_at=now)
        session.add(alert)
        session.flush()
        history(session, alert.id, now, "raised", f"rule:{condition.rule}", condition.message)
        raised += 1
    for key, alert in active.items():
        if key in wanted:
            continue
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = now
        history(session, alert.id, now, "resolved", f"rule:{alert.rule}", "condition cleared")
        resolved += 1
    return raised, resolved


def silent_condition(interval_s: float, silent_intervals: float) -> Condition:
    seconds = interval_s * silent_intervals
    return Condition("silent", "silent", "critical", f"no heartbeat for more than {seconds:.0f} s",
                     f"超过 {seconds:.0f} 秒无心跳（离线）")
