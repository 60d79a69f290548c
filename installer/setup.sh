#!/usr/bin/env bash
# Puts everything the project needs on a Debian 12 machine: system packages, the virtualenv at .venv/
# with the pinned Python packages, and the demo data. Safe to run again: each step skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc            # the interpreter and what compiled wheels need
  socat                                           # serial pseudo-terminal pairs for simulated devices
  pcscd libpcsclite-dev swig vsmartcard-vpcd pcsc-tools   # PC/SC: the daemon, pyscard's build, virtual readers
  cups cups-bsd printer-driver-cups-pdf libcups2-dev poppler-utils   # report printer: CUPS, a PDF queue, pycups
  libusb-1.0-0                                    # USB HID scanners through pyusb
  fonts-wqy-zenhei                                # CJK glyphs for the screens and the receipt rendering
  chromium                                        # the IT console's browser test (Playwright drives it; no browser download)
  libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-randr0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 xvfb
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "==> installing Python packages"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*; touch "$stamp"
fi

echo "==> preparing the demo data"
.venv/bin/kiosk-central init
