"""Barcode/QR scanners: a serial line scanner, a USB HID keyboard-wedge scanner, and what a scan means.

The drivers only turn bytes into text; `classify` decides what the text is (visit code, payment code, ...)
so the same rules apply whichever scanner the kiosk has.
"""
