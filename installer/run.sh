#!/usr/bin/env bash
# Sets everything up and runs the product on its embedded defaults: kiosk-central (SQLite, reference HIS,
# WeChat Pay sandbox) and one kiosk on simulated devices. With a display the kiosk opens in a window next
# to a device-simulator panel, with its fleet agent beside it reporting to kiosk-central (log in
# var/kiosk-agent.log); without one it walks a scripted visit headless and writes its screens.
set -euo pipefail
cd "$(dirname "$0")/.."
installer/setup.sh

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "==> no display: running the headless demo visit"
  exec .venv/bin/kiosk demo --headless --out out/demo
fi

PORT=${KIOSK_CENTRAL_PORT:-8000}
echo "==> starting kiosk-central on http://127.0.0.1:$PORT"
.venv/bin/kiosk-central serve --port "$PORT" > var/central.log 2>&1 &
central=$!
agent=""
trap 'kill $central $agent 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  .venv/bin/python -c "import httpx,sys; httpx.get('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null && break
  kill -0 $central 2>/dev/null || { echo "kiosk-central failed to start, see var/central.log"; exit 1; }
  sleep 0.3
done
mkdir -p var/kiosk
.venv/bin/kiosk-central provision-terminal --id KIOSK-001 --out var/kiosk/credentials.json
# The fleet agent reports only (no --kiosk-cmd): the kiosk below stays this script's own foreground process,
# and closing its window ends the demo. It hears the kiosk over the local link (UDP on loopback).
echo "==> starting the fleet agent (heartbeats to kiosk-central; log in var/kiosk-agent.log)"
.venv/bin/kiosk-agent --credentials var/kiosk/credentials.json --data-dir var/kiosk-agent \
  > var/kiosk-agent.log 2>&1 &
agent=$!
sleep 1
kill -0 $agent 2>/dev/null || { echo "    the fleet agent did not start (see var/kiosk-agent.log); the kiosk runs without it"; agent=""; }
echo "==> starting the kiosk on simulated devices (the simulator panel lays the ID card and pays)"
.venv/bin/kiosk run --simulated --windowed --credentials var/kiosk/credentials.json
