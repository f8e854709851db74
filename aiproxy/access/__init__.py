"""Access control (issue 6): client keys, identity, rate limits, budgets, and hardening.

`setup.setup_access(app, settings)` wires everything into an app; the CLI (`python -m aiproxy
keys ...`) manages keys in the same database as the usage ledger.
"""
