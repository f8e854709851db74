"""What every provider built on GeminiClient (or a subclass) does alike: hand the operator's
retry policy, fallbacks and event sink to its client, and open/close its one session."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiproxy.providers.base import UpstreamEvents
    from aiproxy.providers.gemini.client import GeminiClient
    from aiproxy.providers.retry import Fallbacks, RetryPolicy


class ClientLifecycle:
    client: GeminiClient

    def configure(self, retry_policy: RetryPolicy, fallbacks: Fallbacks, events: UpstreamEvents) -> None:
        self.client.retry_policy = retry_policy
        self.client.fallbacks = fallbacks
        self.client.events = events

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    @property
    def is_open(self) -> bool:
        return self.client.is_open
