"""The shape of a JSON body (how many values, how deep) read from its raw bytes, before parsing.

Parsing and validating JSON costs time per value, not per byte, and none of it yields the event
loop: a 20 MB body of 740,000 one-letter text parts held every other stream for seconds, and so
did an ignored field holding a 10-million-element array. A few passes of C-speed byte functions
(`translate`, `count`, `split`: tens of ms for 20 MB) bound both before orjson or pydantic see
the body:

- values: every value and object key after the first is preceded by a `,` or `:`, and the first
  one in a container by its `[` or `{`, so `1 + commas + colons + openers` outside strings is an
  upper bound on the values and keys (and at least a third of it). Only the structural bytes and
  quotes are kept; more strings than the limit is already too many; otherwise what lies between
  the strings is counted, so commas and brackets inside text do not count.
- depth: the brackets between the strings are reduced by deleting adjacent `[]` pairs; a body
  nested at most `max_depth` deep is empty after that many rounds.

The bytes are only counted, never trusted: a body that passes still goes through orjson and the
request models, which refuse anything malformed.
"""

from __future__ import annotations

from dataclasses import dataclass

_STRUCTURE = b',:[]{}"'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CURLY_TO_SQUARE = bytes.maketrans(b"{}", b"[]")


@dataclass(frozen=True)
class ShapeViolation:
    """Why a body was refused: `values` or `depth`, and the limit it broke."""

    kind: str
    limit: int


def check_json_shape(raw: bytes, max_values: int, max_depth: int) -> ShapeViolation | None:
    """None when `raw` holds at most `max_values` values and keys nested at most `max_depth`
    deep (or is no JSON at all: the parser answers that); else what it broke.

    A few passes over the bytes, all in C: at most two copies to drop escaped backslashes and
    quotes, one `translate` keeping only structural bytes, one `split` on quotes.
    """
    if len(raw) <= max_values and raw.count(b"[") + raw.count(b"{") <= max_depth:
        return None  # every value takes at least a byte; too few brackets to nest too deep
    if b"\\" in raw:  # escaped quotes and backslashes are string contents, not structure
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(None, _NOT_STRUCTURE)
    quotes = structure.count(b'"')
    if quotes // 2 > max_values:  # each string is a value or a key
        return ShapeViolation("values", max_values)
    bare = b"".join(structure.split(b'"')[::2])  # separators and brackets between the strings
    if 1 + len(bare) - bare.count(b"]") - bare.count(b"}") > max_values:  # 1 + commas + colons + openers
        return ShapeViolation("values", max_values)
    return _depth_violation(bare.translate(_CURLY_TO_SQUARE, _NOT_BRACKETS), max_depth)


def _depth_violation(brackets: bytes, max_depth: int) -> ShapeViolation | None:
    """Delete innermost `[]` pairs round by round: a nesting of depth d is gone after d rounds."""
    for _ in range(max_depth):
        if not brackets:
            return None
        reduced = brackets.replace(b"[]", b"")
        if len(reduced) == len(brackets):
            return None  # unbalanced: not JSON, the parser says so
        brackets = reduced
    return ShapeViolation("depth", max_depth) if brackets else None
