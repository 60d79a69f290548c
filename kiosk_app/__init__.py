"""The terminal application: configuration, wiring of workflows to drivers, UI and the central server."""
