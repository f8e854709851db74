"""Golden tests: Lotti's `<think>` history is not sent back to Gemini (issue 11 item 11).

One row per shape of assistant history; user turns and mid-answer mentions stay as sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.openai.types import parse_chat_request
from aiproxy.providers.gemini.request import build_gemini_request


def contents(*messages: dict[str, Any]) -> list[dict[str, Any]]:
    body = build_gemini_request(parse_chat_request({"model": "m", "messages": list(messages)}), "gemini-2.5-flash")
    return body["contents"]


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def text_part(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


QUESTION = {"role": "user", "content": "Q"}

ASSISTANT_HISTORY = [
    pytest.param("<think>Let me work it out.</think>42", [{"text": "42"}], id="one-block"),
    pytest.param("<think>\nstep 1\nstep 2\n</think>\n\nThe answer is 42.", [{"text": "The answer is 42."}],
                 id="block-with-newlines-and-blank-line"),
    pytest.param("  \n<think>a</think>  <think>b</think>\n42", [{"text": "42"}], id="several-blocks-and-whitespace"),
    pytest.param("<think>the user stopped the stream here", [], id="unclosed-block-is-all-thought"),
    pytest.param("<think>only thoughts</think>", [], id="only-thoughts-drops-the-turn"),
    pytest.param("42 <think>is a tag Lotti shows</think>", [{"text": "42 <think>is a tag Lotti shows</think>"}],
                 id="mention-mid-content-kept"),
    pytest.param("Use <think>…</think> to see thoughts.", [{"text": "Use <think>…</think> to see thoughts."}],
                 id="mention-after-text-kept"),
    pytest.param("<THINK>shout</THINK>42", [{"text": "<THINK>shout</THINK>42"}], id="other-case-is-not-ours"),
    pytest.param("<think>a</think>42<think>b</think>43", [{"text": "42<think>b</think>43"}],
                 id="only-leading-blocks-go"),
    pytest.param([text_part("<think>a</think>42")], [{"text": "42"}], id="text-part"),
    pytest.param([text_part("<think>a</think>"), text_part("\n<think>b</think>42"), text_part("<think>c</think>")],
                 [{"text": "42"}, {"text": "<think>c</think>"}], id="leading-text-parts-in-turn"),
    pytest.param([text_part("fine"), text_part("<think>a</think>")], [{"text": "fine"}, {"text": "<think>a</think>"}],
                 id="later-part-kept"),
]


@pytest.mark.parametrize(("content", "expected_parts"), ASSISTANT_HISTORY)
def test_leading_think_blocks_leave_assistant_history(content: Any, expected_parts: list[dict[str, Any]]) -> None:
    turns = contents(QUESTION, assistant(content), {"role": "user", "content": "next"})
    model_turns = [t["parts"] for t in turns if t["role"] == "model"]
    assert model_turns == ([expected_parts] if expected_parts else [])


@pytest.mark.parametrize("content", ["<think>my own notes</think>question", [text_part("<think>x</think>y")]])
def test_user_messages_keep_their_think_text(content: Any) -> None:
    sent = contents({"role": "user", "content": content})[0]["parts"][0]["text"]
    assert sent.startswith("<think>")


def test_tool_calls_stay_when_the_thoughts_go() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turns = contents(QUESTION, {"role": "assistant", "content": "<think>call f</think>", "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "ok"})
    assert turns[1] == {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}
