"""The two monthly PDFs: the inspection report (巡检报告) and the usage analysis.

The CJK font is embedded from the system (as the terminal's report printer does, ``drivers.report.pdf``) so the
PDF reads the same on any computer. Figures come from the fleet service layer only. Offline time is measured
from "silent" alerts (raised when a terminal stops beating, resolved by its next beat), which is what the
7×24 / 4-hour repair contract is judged on.
"""
from __future__ import annotations

import io
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from central.console import labels
from central.console.usage import summarise
from central.fleet import service as fleet
from central.fleet.views import AlertView
from central.services import Services
from drivers.report.pdf import register_cjk_font

REPAIR_HOURS = 4
NAVY = colors.HexColor("#14324a")
RED = colors.HexColor("#c9302c")
AMBER = colors.HexColor("#b7791f")
GREEN = colors.HexColor("#1f8a4c")
LIGHT = colors.HexColor("#eef1f5")


def month_start(text: str, tz: ZoneInfo) -> datetime:
    """"2026-11" -> 2026-11-01 00:00 hospital time; ValueError for anything else."""
    try:
        year, month = (int(part) for part in text.split("-"))
        return datetime(year, month, 1, tzinfo=tz)
    except (ValueError, TypeError):
        raise ValueError(f"month must look like 2026-11, not {text[:20]!r}") from None


def next_month(first: datetime) -> datetime:
    return first.replace(year=first.year + (first.month == 12), month=first.month % 12 + 1)


def _styles() -> dict[str, ParagraphStyle]:
    font = register_cjk_font()
    base = ParagraphStyle("base", fontName=font, fontSize=9, leading=12.5, wordWrap="CJK")
    return {
        "base": base,
        "title": ParagraphStyle("title", parent=base, fontSize=17, leading=24, textColor=NAVY),
        "sub": ParagraphStyle("sub", parent=base, fontSize=9.5, textColor=colors.HexColor("#66727f")),
        "h2": ParagraphStyle("h2", parent=base, fontSize=12, leading=18, spaceBefore=8, spaceAfter=4, textColor=NAVY),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10.5),
        "big": ParagraphStyle("big", parent=base, fontSize=15, leading=19),
        "note": ParagraphStyle("note", parent=base, fontSize=7.5, leading=10, textColor=colors.HexColor("#66727f")),
    }


def _p(text: object, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape("" if text is None else str(text)), style)


def _table(rows: list[list[object]], widths: list[float], st: dict[str, ParagraphStyle],
           highlight: list[tuple[int, colors.Color]] | None = None) -> Table:
    if len(rows) == 1:  # a header alone reads as a broken table: say there is nothing
        rows = rows + [["无 none"] + [""] * (len(rows[0]) - 1)]
    data = [[c if isinstance(c, Paragraph) else _p(c, st["cell"]) for c in row] for row in rows]
    table = Table(data, colWidths=widths, repeatRows=1)
    style = [("BACKGROUND", (0, 0), (-1, 0), LIGHT), ("LINEBELOW", (0, 0), (-1, 0), 0.8, NAVY),
             ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#dde3ea")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("TOPPADDING", (0, 0), (-1, -1), 2.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5)]
    for row, colour in highlight or []:
        style.append(("TEXTCOLOR", (0, row), (-1, row), colour))
    table.setStyle(TableStyle(style))
    return table


def _kpis(items: list[tuple[str, str, str]], st: dict[str, ParagraphStyle], width: float) -> Table:
    cells = [[Paragraph(f"<font size=15>{escape(v)}</font><br/>{escape(zh)}<br/><font size=7 color='#66727f'>"
                        f"{escape(en)}</font>", st["base"]) for v, zh, en in items]]
    table = Table(cells, colWidths=[width / len(items)] * len(items))
    table.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#dde3ea")),
                               ("INNERGRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#dde3ea")),
                               ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f8fafc")),
                               ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return table


def _doc(buffer: io.BytesIO, title: str) -> SimpleDocTemplate:
    return SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                             bottomMargin=14 * mm, title=title, author="Kiosk Central")


def _footer(svc: Services, text: str):  # type: ignore[no-untyped-def]
    font = register_cjk_font()

    def draw(canvas, doc) -> None:  # type: ignore[no-untyped-def]
        canvas.saveState()
        canvas.setFont(font, 7.5)
        canvas.setFillColor(colors.HexColor("#66727f"))
        canvas.drawString(15 * mm, 8 * mm, text)
        canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"第 {doc.page} 页 · page {doc.page}")
        canvas.restoreState()
    return draw


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _in_month(alert: AlertView, start: datetime, end: datetime) -> bool:
    return start <= alert.raised_at < end


def inspection_report(svc: Services, first: datetime, *, prepared_by: str) -> bytes:
    """巡检报告: the state of every terminal, the month's alerts and how fast they were handled, remote actions."""
    st = _styles()
    end = next_month(first)
    now = svc.now()
    horizon = min(end, now)
    tz = svc.settings.tz
    terminals = fleet.list_terminals(svc)
    alerts = [a for a in fleet.list_alerts(svc, limit=5000) if _in_month(a, first, end)]
    commands = [c for c in fleet.list_commands(svc, limit=1000) if first <= c.issued_at < end]
    span = max(timedelta(minutes=1), horizon - first) if horizon > first else timedelta(minutes=1)

    offline: dict[str, timedelta] = defaultdict(timedelta)
    per_terminal: dict[str, Counter[str]] = defaultdict(Counter)
    ack_times, repair_times = [], []
    for alert in alerts:
        per_terminal[alert.terminal_id][alert.rule] += 1
        closed = alert.resolved_at or horizon
        if alert.rule == "silent":
            offline[alert.terminal_id] += max(timedelta(0), min(closed, horizon) - max(alert.raised_at, first))
        if alert.acknowledged_at:
            ack_times.append(_hours(alert.acknowledged_at - alert.raised_at) * 60)
        if alert.resolved_at and alert.severity == "critical":
            repair_times.append(_hours(alert.resolved_at - alert.raised_at))
    critical = [a for a in alerts if a.severity == "critical"]
    within = sum(1 for h in repair_times if h <= REPAIR_HOURS)
    availability = 1 - sum(offline.values(), timedelta()) / (span * max(1, len(terminals)))

    story: list[object] = [
        _p(f"自助终端月度巡检报告 {first:%Y年%m月}", st["title"]),
        _p(f"Monthly inspection report, {first:%B %Y} · {svc.settings.timezone} · 生成 generated "
           f"{now.astimezone(tz):%Y-%m-%d %H:%M} · 制表 prepared by {prepared_by}", st["sub"]),
        Spacer(1, 6),
        _kpis([(str(len(terminals)), "终端总数", "terminals"),
               (f"{availability * 100:.2f}%", "在线率", "availability (from silent alerts)"),
               (str(len(alerts)), "本月告警", "alerts raised"),
               (str(len(critical)), "严重告警", "critical alerts"),
               (f"{within}/{len(repair_times)}" if repair_times else "—", f"{REPAIR_HOURS} 小时内修复",
                f"critical fixed within {REPAIR_HOURS} h"),
               (f"{sum(ack_times) / len(ack_times):.0f} 分" if ack_times else "—", "平均响应", "mean time to ack")],
              st, A4[0] - 30 * mm),
        _p("一、当前状态 Current state", st["h2"]),
    ]
    by_status = Counter(labels.colour(v.status, v.paper) for v in terminals)
    story.append(_table([["正常 OK", "注意 Attention", "需处理 Action needed", "维护 Maintenance"],
                         [by_status["green"], by_status["amber"], by_status["red"], by_status["grey"]]],
                        [45 * mm] * 4, st))
    story.append(_p("二、本月告警 Alerts this month", st["h2"]))
    rules = Counter(a.rule for a in alerts)
    story.append(_table([["类型 Rule", "次数 Count", "严重 Critical", "已恢复 Resolved"]] +
                        [[f"{labels.zh(labels.ALERT_RULES, r)} {r}", n,
                          sum(1 for a in alerts if a.rule == r and a.severity == "critical"),
                          sum(1 for a in alerts if a.rule == r and a.resolved_at)] for r, n in rules.most_common()], [60 * mm, 35 * mm, 35 * mm, 35 * mm], st))
    unresolved = [a for a in fleet.list_alerts(svc, status="active", limit=500)]
    story.append(_p(f"三、未关闭告警 Alerts still open ({len(unresolved)})", st["h2"]))
    story.append(_table([["终端 Terminal", "类型 Rule", "内容 Message", "发生 Raised", "认领 Ack by"]] +
                        [[a.terminal_id, labels.zh(labels.ALERT_RULES, a.rule),
                          a.text_zh,
                          a.raised_at.astimezone(tz).strftime("%m-%d %H:%M"), a.acknowledged_by or "未认领"]
                         for a in unresolved[:60]],
                        [28 * mm, 24 * mm, 70 * mm, 25 * mm, 33 * mm], st,
                        [(i + 1, RED) for i, a in enumerate(unresolved[:60]) if a.severity == "critical"]))
    story.append(_p("四、远程操作 Remote commands", st["h2"]))
    kinds = Counter((c.kind, c.status) for c in commands)
    kind_names = sorted({k for k, _ in kinds})
    story.append(_table([["指令 Command", "已完成 Executed", "失败 Failed", "过期 Expired", "进行中 Open"]] +
                        [[labels.zh(labels.COMMANDS, k) + " " + k, kinds[(k, "EXECUTED")], kinds[(k, "FAILED")],
                          kinds[(k, "EXPIRED")], sum(kinds[(k, s)] for s in ("PENDING", "SENT", "ACKED"))]
                         for k in kind_names],
                        [60 * mm, 30 * mm, 30 * mm, 30 * mm, 30 * mm], st))
    story.append(_p("五、逐台巡检 Terminal by terminal", st["h2"]))
    rows: list[list[object]] = [["终端 Terminal", "位置 Location", "状态 State", "版本 Version", "离线 Offline",
                                 "设备故障 Faults", "缺纸 Paper", "告警 Alerts"]]
    marks = []
    for i, v in enumerate(terminals, start=1):
        counts = per_terminal.get(v.terminal_id, Counter())
        colour = labels.colour(v.status, v.paper)
        if colour == "red":
            marks.append((i, RED))
        elif colour == "amber":
            marks.append((i, AMBER))
        rows.append([v.terminal_id, f"{v.campus} {v.floor} {v.location}",
                     labels.zh(labels.STATUS, v.status) + ("/" + labels.zh(labels.PAPER, v.paper)
                                                           if v.paper in ("low", "out") else ""),
                     v.app_version or "—", f"{_hours(offline.get(v.terminal_id, timedelta())):.1f} h",
                     counts["device_fault"], counts["paper"], sum(counts.values())])
    story.append(_table(rows, [24 * mm, 52 * mm, 22 * mm, 18 * mm, 16 * mm, 16 * mm, 14 * mm, 18 * mm], st, marks))
    story.append(Spacer(1, 6))
    story.append(_p("在线率按“终端静默”告警的持续时间计算；修复时长为严重告警从发生到恢复的时间。"
                    "Availability counts the time terminals were silent; repair time runs from a critical alert "
                    "to its resolution.", st["note"]))
    buffer = io.BytesIO()
    _doc(buffer, f"巡检报告 {first:%Y-%m}").build(
        story, onFirstPage=_footer(svc, "自助终端运维平台 · 巡检报告"), onLaterPages=_footer(svc, "自助终端运维平台 · 巡检报告"))
    return buffer.getvalue()


def usage_report(svc: Services, first: datetime, *, prepared_by: str) -> bytes:
    """使用分析报告: visits per service and hour of day, per day, per terminal; payments and failures."""
    st = _styles()
    end = next_month(first)
    tz = svc.settings.tz
    u = summarise(fleet.usage_stats(svc, since=first, until=end))
    story: list[object] = [
        _p(f"自助终端使用分析报告 {first:%Y年%m月}", st["title"]),
        _p(f"Usage analysis, {first:%B %Y} · 生成 generated {svc.now().astimezone(tz):%Y-%m-%d %H:%M} · "
           f"制表 prepared by {prepared_by}", st["sub"]),
        Spacer(1, 6),
        _kpis([(str(u.stats.visits), "业务次数", "visits"), (str(u.stats.payments), "完成支付", "payments"),
               (str(u.stats.failures), "失败", "failures"), (f"{u.failure_rate * 100:.1f}%", "失败率", "failure rate"),
               (str(len(u.by_terminal)), "有业务的终端", "terminals used")], st, A4[0] - 30 * mm),
        _p("一、各业务分时段 Visits per service per hour of day", st["h2"]),
    ]
    hours = list(range(6, 22))
    head = ["业务 Service"] + [f"{h}" for h in hours] + ["其他", "合计"]
    rows: list[list[object]] = [head]
    for service in u.services:
        counts = u.by_hour[service]
        rows.append([labels.zh(labels.SERVICES, service)] + [counts[h] or "" for h in hours]
                    + [sum(counts) - sum(counts[h] for h in hours) or "", sum(counts)])
    width = (A4[0] - 30 * mm - 28 * mm) / (len(hours) + 2)
    story.append(_table(rows,
                        [28 * mm] + [width] * (len(hours) + 2), st))
    story.append(_p("二、按日 Per day", st["h2"]))
    story.append(_table([["日期 Day", "业务 Visits", "支付 Payments", "失败 Failures"]] +
                        [[d.isoformat(), n, p, f] for d, n, p, f in u.by_day],
                        [45 * mm, 40 * mm, 40 * mm, 40 * mm], st))
    story.append(_p("三、按终端 Per terminal (busiest first)", st["h2"]))
    places = {v.terminal_id: v for v in fleet.list_terminals(svc)}
    story.append(_table([["终端 Terminal", "位置 Location", "业务 Visits", "支付 Payments", "失败 Failures"]] +
                        [[tid, (f"{places[tid].campus} {places[tid].floor} {places[tid].location}"
                                if tid in places else ""), n, p, f] for tid, n, p, f in u.by_terminal], [28 * mm, 70 * mm, 27 * mm, 27 * mm, 27 * mm], st,
                        [(i + 1, RED) for i, row in enumerate(u.by_terminal) if row[1] and row[3] / row[1] > 0.1]))
    story.append(Spacer(1, 6))
    story.append(_p("业务次数为离开首页的一次就诊操作；支付为到达出票（fulfilling）状态；失败为进入 failed 状态。"
                    "A visit is one session that left the home screen; a payment reached fulfilment; a failure ended "
                    "in the failed state.", st["note"]))
    buffer = io.BytesIO()
    _doc(buffer, f"使用分析 {first:%Y-%m}").build(
        story, onFirstPage=_footer(svc, "自助终端运维平台 · 使用分析"), onLaterPages=_footer(svc, "自助终端运维平台 · 使用分析"))
    return buffer.getvalue()
