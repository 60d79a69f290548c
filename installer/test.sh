#!/usr/bin/env bash
# Sets everything up and runs the whole test suite (screens render offscreen; devices are simulated on
# their real wire protocols; the server runs as a real process on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
installer/setup.sh
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest "$@"
