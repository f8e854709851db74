"""The one pattern a client's model name must match, checked before anything else uses it.

A model name ends up in the upstream URL (`models/{id}:streamGenerateContent`), in metric labels
and in log lines. Unchecked, `gemini-2.5-flash:generateContent#` made the proxy call another
Gemini method, and a CR/LF broke the response after it was billed. So a name is:

    [provider "/"] name
    provider = [a-z0-9][a-z0-9_-]{0,31}          e.g. gemini/   (Gemini's own models/ works too)
    name     = [A-Za-z0-9][A-Za-z0-9._:-]{0,127}  e.g. gpt-4o, gemini-2.5-flash, llama3.2:latest

Anything else (CR/LF, `#`, `?`, spaces, a second `/`, empty, too long, not a string) is a 400
`invalid_request_error` with param `model`, before any upstream call and before any metering.
A well-formed name with a provider that does not route anywhere yet is 404 `model_not_found`.
Once the model map has resolved a name, the Gemini model id must also be a plain Gemini id
(`[a-z0-9][a-z0-9.-]*`): `gemini-2.5-flash:generateContent` is a 400 too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiproxy.errors import ProxyError, bad_request

MODEL_NAME = re.compile(r"(?:(?P<provider>[a-z0-9][a-z0-9_-]{0,31})/)?(?P<name>[A-Za-z0-9][A-Za-z0-9._:-]{0,127})")
GEMINI_MODEL_ID = re.compile(r"[a-z0-9][a-z0-9.-]*")
# Prefixes that route to Gemini: ours, and the `models/` of Gemini's own resource names.
GEMINI_PREFIXES = frozenset({"gemini", "models"})


@dataclass(frozen=True, slots=True)
class ModelName:
    provider: str | None  # None when the client gave no prefix
    name: str  # without the prefix


def _invalid(shown: str) -> ProxyError:
    return bad_request(
        f"Invalid model name {shown}: expected an optional provider prefix and a name of letters, digits "
        "and . _ : - (at most 128 characters), e.g. `gpt-4o`, `gemini-2.5-flash` or `gemini/gemini-2.5-flash`.",
        param="model", code="invalid_model")


def parse_model_name(value: object) -> ModelName:
    """The client's `model` split into provider and name; 400 when it does not fit the pattern."""
    if not isinstance(value, str):
        raise _invalid("(not a string)")
    match = MODEL_NAME.fullmatch(value)
    if match is None:
        raise _invalid("(it has characters or a length that are not allowed)")
    return ModelName(match["provider"], match["name"])


def check_gemini_model_id(model_id: str) -> str:
    """`model_id` when it is a plain Gemini model id (safe as one URL path segment); else 400."""
    if not GEMINI_MODEL_ID.fullmatch(model_id):
        raise _invalid(f"`{model_id}` (not a Gemini model id: lowercase letters, digits, . and -)")
    return model_id
