"""Visit workflows: plain-Python state machines that never import Qt, never touch a device implementation and
never lose money. The UI renders their view state and sends intents; devices and the backend reach them as
events."""
