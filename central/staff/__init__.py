"""Staff of the IT console: accounts (password + TOTP second factor, roles, lockout), login sessions, CSRF
and the audit log of what staff did. The web pages live in ``central.console``; the rules live here."""
