"""The dashboard suites reuse the ledger suite's two-backend `ledger_url` fixture."""

from tests.ledger.conftest import ledger_url  # noqa: F401 - re-exported fixture
