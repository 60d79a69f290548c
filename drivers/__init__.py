"""Terminal devices: one small contract per device class, real drivers, and wire-level simulators."""
