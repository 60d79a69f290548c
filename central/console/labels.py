"""Names shown in the console: Chinese first, English beside it, for statuses, devices, commands and alerts."""
from __future__ import annotations

import re

from central.fleet.alerts import DEVICE_NAMES

STATUS = {
    "ok": ("正常", "OK"),
    "degraded": ("降级", "Degraded"),
    "fault": ("故障", "Fault"),
    "offline": ("离线", "Offline"),
    "maintenance": ("维护中", "Maintenance"),
}

#: A tile's colour: what IT must look at first is red.
COLOUR_NAMES = {"green": ("正常", "OK"), "amber": ("注意", "Attention"), "red": ("需处理", "Action needed"),
                "grey": ("维护", "Maintenance")}

PAPER = {"ok": ("纸充足", "paper ok"), "low": ("纸将尽", "paper low"), "out": ("缺纸", "paper out"),
         "unknown": ("纸量未知", "paper unknown")}

DEVICES = DEVICE_NAMES  # the fleet's own table: alerts are written with the same names

COMMANDS = {
    "restart_app": ("重启应用", "Restart app"),
    "reboot": ("重启终端", "Reboot"),
    "maintenance_on": ("进入维护", "Maintenance on"),
    "maintenance_off": ("结束维护", "Maintenance off"),
    "reload_config": ("重载配置", "Reload config"),
    "screenshot": ("截屏", "Screenshot"),
    "collect_logs": ("收集日志", "Collect logs"),
    "self_test": ("设备自检", "Self-test"),
    "update": ("升级软件", "Update"),
}

#: Commands that change what patients see: the console asks before sending them.
DISRUPTIVE = {"restart_app", "reboot", "maintenance_on", "update"}

COMMAND_STATUS = {
    "PENDING": ("待发送", "Pending"), "SENT": ("已下发", "Sent"), "ACKED": ("执行中", "Acked"),
    "EXECUTED": ("已完成", "Executed"), "FAILED": ("失败", "Failed"), "EXPIRED": ("已过期", "Expired"),
}

ALERT_RULES = {
    "silent": ("终端离线", "Terminal silent"), "device_fault": ("设备故障", "Device fault"),
    "paper": ("打印纸", "Paper"), "error_rate": ("错误激增", "Error spike"),
    "queue_backlog": ("离线队列积压", "Queue backlog"), "failed_payments": ("支付失败", "Failed payments"),
}

ALERT_STATUS = {"open": ("未处理", "Open"), "acknowledged": ("已认领", "Acknowledged"),
                "resolved": ("已恢复", "Resolved"), "active": ("处理中", "Active")}

SEVERITY = {"critical": ("严重", "Critical"), "warning": ("警告", "Warning"), "info": ("提示", "Info"),
            "error": ("错误", "Error")}

SERVICES = {"registration": ("当日挂号", "Same-day registration"), "payment": ("门诊缴费", "Outpatient payment"),
            "checkin": ("签到", "Check-in"), "printing": ("报告打印", "Report printing"),
            "inpatient": ("住院预交金", "Inpatient deposit"), "exam": ("体检", "Physical exam"),
            "unknown": ("未知", "Unknown")}

ROLES = {"admin": ("管理员", "Admin"), "it": ("信息科", "IT"), "readonly": ("只读", "Read-only")}


def pair(table: dict[str, tuple[str, str]], key: str) -> tuple[str, str]:
    return table.get(key, (key, key))


def zh(table: dict[str, tuple[str, str]], key: str) -> str:
    return pair(table, key)[0]


def en(table: dict[str, tuple[str, str]], key: str) -> str:
    return pair(table, key)[1]


def colour(status: str, paper: str) -> str:
    """green ok, amber degraded or paper low, red fault / paper out / offline, grey maintenance."""
    if status == "maintenance":
        return "grey"
    if status in ("fault", "offline") or paper == "out":
        return "red"
    if status == "degraded" or paper == "low":
        return "amber"
    return "green"


_FLOOR = re.compile(r"^\s*(B)?\s*(\d+)", re.IGNORECASE)


def floor_key(floor: str) -> tuple[int, str]:
    """Floors in building order: B2, B1, 1F, 2F ... 10F (not 10F before 2F); unknown ones last."""
    match = _FLOOR.match(floor or "")
    if not match:
        return (10_000, floor or "")
    number = int(match.group(2))
    return (-number if match.group(1) else number, floor)


def short_id(terminal_id: str) -> str:
    """The part of a terminal id a person reads on a tile ("KIOSK-037" -> "037")."""
    head, _, tail = terminal_id.rpartition("-")
    return tail if head and tail else terminal_id
