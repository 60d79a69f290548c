"""The kiosk's design system: one place for sizes, colours and type, so every screen keeps touch targets
large and text readable at arm's length (K14). Sizes are in pixels for a 1920×1080 lobby screen."""
from __future__ import annotations

FONT_FAMILY = "WenQuanYi Zen Hei"

SCREEN_W, SCREEN_H = 1920, 1080
TOUCH_MIN = 96  # smallest touch target edge; a gloved or trembling finger still hits it

PRIMARY = "#0B6FB8"
PRIMARY_DARK = "#08538A"
ACCENT = "#12A06B"  # go / success
WARN = "#E07B00"
DANGER = "#D64541"
INK = "#1F2A37"
MUTED = "#66778A"
BACKGROUND = "#EEF3F8"
CARD = "#FFFFFF"
LINE = "#D5DEE8"
DISABLED_BG = "#E1E6EC"
DISABLED_INK = "#9AA7B4"

STYLESHEET = f"""
QWidget {{ font-family: "{FONT_FAMILY}"; color: {INK}; }}
#Root {{ background: {BACKGROUND}; }}
#Header {{ background: {PRIMARY}; }}
#Header QLabel {{ color: white; }}
#PatientBar {{ background: #DCEBF7; }}
#Footer {{ background: transparent; }}
QPushButton {{
    font-size: 30px; border-radius: 14px; padding: 0 36px; min-height: {TOUCH_MIN}px;
    background: {CARD}; border: 2px solid {LINE}; color: {INK};
}}
QPushButton:pressed {{ background: {LINE}; }}
QPushButton[kind="primary"] {{ background: {ACCENT}; color: white; border: none; font-weight: bold; }}
QPushButton[kind="primary"]:pressed {{ background: #0C7D53; }}
QPushButton[kind="danger"] {{ background: white; color: {DANGER}; border: 2px solid {DANGER}; }}
QPushButton:disabled {{ background: {DISABLED_BG}; color: {DISABLED_INK}; border: none; }}
#Card {{ background: {CARD}; border-radius: 20px; border: 1px solid {LINE}; }}
#Notice {{ background: #FFF3E0; color: #8A4B00; border: 2px solid {WARN}; border-radius: 14px;
           font-size: 28px; padding: 14px 24px; }}
"""
