"""PC/SC contact-card reader: EMV bank cards and social-security cards through pcscd.

The protocol (what to send to a card, how to read its answers) lives in `apdu`, `emv` and `social` as plain
functions over a transmit callable, so it is testable without a reader; `reader` is the only module that
talks to pcscd.
"""
