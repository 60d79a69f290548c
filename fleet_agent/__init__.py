"""Per-terminal fleet agent: heartbeat, device and system health, remote commands, watchdog of the kiosk app."""
