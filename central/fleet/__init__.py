"""Fleet operations: terminal heartbeats and health, alerts, remote commands, metrics (requirement F)."""
