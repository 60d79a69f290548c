"""Payment channels of the central server.

The kiosk never talks to a payment provider itself: central owns the merchant keys and speaks to each channel
through one interface (``channel.PaymentChannel``), so the order logic, the sweeper and reconciliation do not
care which provider took the money. Each channel has a local sandbox that checks requests the way the real
service does, so the demo and the tests run the real protocol code on loopback.
"""
