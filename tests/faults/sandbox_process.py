"""The WeChat Pay sandbox as a process of its own, so it outlives a server the tests kill and restart:
the money stays where it was paid, as it does at the real provider.

    python -m tests.faults.sandbox_process KEY_DIR PORT
"""
from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from central.payments.keys import ensure_sandbox_keys
from central.payments.wechatpay_sandbox import create_sandbox_app

if __name__ == "__main__":
    keys = ensure_sandbox_keys(Path(sys.argv[1]))
    uvicorn.run(create_sandbox_app(keys, notify_retry_delays=(0.5, 1, 2, 4, 8, 15, 30)), host="127.0.0.1",
                port=int(sys.argv[2]), log_level="warning")
