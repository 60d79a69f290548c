"""Per-terminal fleet agent (not built yet; see README.md)."""
