"""Access control (issue 6): client keys, identity, rate limits, budgets.

`setup.build_access(...)` builds them into one `Access` object that `aiproxy.app.create_app`
wires in; the CLI (`python -m aiproxy keys ...`) manages keys in the same database as the usage
ledger.
"""
