"""Durable outbox for the kiosk (not built yet; see README.md)."""
