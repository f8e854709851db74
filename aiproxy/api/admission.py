"""Admission: the ordered checks a model request passes before the upstream is called.

`create_app` builds one `Admission` from the steps of access, billing and media, in the order
they must run, and the chat and embeddings handlers call `admit` once. Each step may refuse with
a ProxyError (and whatever an earlier step reserved is given back by the reservations
middleware), so the order is part of the contract: who the caller is before anything reads the
billed user, cheap refusals before reservations, and every refusal before the proxy fetches a
client's remote images.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from aiproxy.appkeys import AdmissionStep
from aiproxy.billing.record import Metering


class Admission:
    __slots__ = ("steps",)

    def __init__(self, steps: Sequence[AdmissionStep]) -> None:
        self.steps: tuple[AdmissionStep, ...] = tuple(steps)

    @property
    def names(self) -> list[str]:
        """The steps' names, in order (for logs and the test that pins the order)."""
        return [getattr(step, "__name__", type(step).__name__) for step in self.steps]

    async def admit(self, request: web.Request, metering: Metering, max_output_tokens: int | None) -> None:
        """Run every step in order; the first refusal (ProxyError) propagates."""
        for step in self.steps:
            await step(request, metering, max_output_tokens)
