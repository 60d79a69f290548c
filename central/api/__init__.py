"""The HTTP layer: thin routes that validate, authenticate and call the plain functions that own the rules."""
