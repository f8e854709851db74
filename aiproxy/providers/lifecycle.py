"""What every provider built on GeminiClient (or a subclass) does alike: hand the operator's
retry policy, fallbacks and event sink to its client; opening and closing its one session comes
from `SessionLifecycle`, which every HTTP provider shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiproxy.providers.upstream import SessionLifecycle

if TYPE_CHECKING:
    from aiproxy.providers.base import UpstreamEvents
    from aiproxy.providers.gemini.client import GeminiClient
    from aiproxy.providers.retry import Fallbacks, RetryPolicy


class ClientLifecycle(SessionLifecycle):
    client: GeminiClient

    def configure(self, retry_policy: RetryPolicy, fallbacks: Fallbacks, events: UpstreamEvents) -> None:
        self.client.retry_policy = retry_policy
        self.client.fallbacks = fallbacks
        self.client.events = events
