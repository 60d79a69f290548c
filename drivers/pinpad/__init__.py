"""The encrypting PIN pad (密码键盘): the patient types a bank-card PIN, the kiosk only ever sees it encrypted.

`protocol` + `pad` are the project's own framed serial protocol and driver; a real pad speaks its vendor's
protocol, so a vendor module implements the same verbs (`base.PinPadDriver`) over its own commands.
`pinblock` and `crypto` are shared with the simulator and the tests' stand-in for the host security module.
"""
