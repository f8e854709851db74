"""Logs, JSON logs, redaction and Prometheus metrics."""
