"""One exception family for everything a card or the PC/SC stack can do wrong.

Workflows catch `CardError` and show `str(exc)`: each message carries the patient-facing Chinese sentence
first and the technician's English after the slash. `reason` is a stable code for logs and the fleet agent.
Messages never contain card data (a PAN in an exception would end up in a log).
"""
from __future__ import annotations


class CardError(Exception):
    reason = "card_error"
    patient_text = "读卡失败，请重新插卡"

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(f"{self.patient_text} / {detail}" if detail else self.patient_text)


class NoCardError(CardError):
    reason = "no_card"
    patient_text = "未检测到卡片，请插入卡片"


class CardRemovedError(CardError):
    reason = "card_removed"
    patient_text = "读卡过程中卡片被取出，请重新插卡"


class CardMuteError(CardError):
    """The card did not answer in time; a card that hangs must not hang the kiosk with it."""
    reason = "card_mute"
    patient_text = "卡片无响应，请取出卡片后重新插入"


class CardDataError(CardError):
    """Malformed TLV, missing tags or implausible values: the card answered, but not with a usable card."""
    reason = "card_data"
    patient_text = "无法识别此卡片，请确认卡片类型"


class CardRefusedError(CardError):
    """The card answered with an error status word (application missing, conditions not satisfied)."""
    reason = "card_refused"
    patient_text = "此卡片不支持该操作，请确认卡片类型"

    def __init__(self, detail: str = "", sw: int | None = None) -> None:
        self.sw = sw
        super().__init__(detail)


class ReaderUnavailableError(CardError):
    """No matching reader, or the PC/SC service itself is down: a kiosk fault, not the patient's card."""
    reason = "disconnected"
    patient_text = "读卡器暂不可用，请联系工作人员"


class PcscUnavailableError(ReaderUnavailableError):
    reason = "pcscd_unavailable"
