"""Metering: usage accounting, pricing, the billing log line and the ledger."""
