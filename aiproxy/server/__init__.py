"""Serving: the listeners, workers, lifecycle (drain, readiness), sd_notify, auto-reload and connection caps."""
