"""Excerpts of canonical records for previews: at most a fixed number of characters of text per record, so a page
of a hundred 1 MiB records answers in kilobytes; what is cut is marked, and the whole record has its own URL."""
from __future__ import annotations

EXCERPT_CHARS = 2000
MARKER = "… [{} more characters]"


def excerpt(record: dict, budget: int = EXCERPT_CHARS) -> tuple[dict, bool]:
    """(the record with its texts cut to budget characters in all, whether anything was cut)."""
    # Chat messages past the budget are left out; the last one shown may be cut.
    if "messages" in record:
        return _chat_excerpt(record["messages"], budget)
    if "chosen" in record:
        return _pair_excerpt(record, budget)
    shown, cut = {}, False
    for key, value in record.items():
        if isinstance(value, str):
            value, budget, shortened = _cut(value, budget)
            cut = cut or shortened
        shown[key] = value
    return shown, cut


def _chat_excerpt(messages: list[dict], budget: int) -> tuple[dict, bool]:
    """The messages that fit the budget, the last of them cut if need be."""
    shown, cut = _messages_within(messages, budget)
    return {"messages": shown}, cut


def _pair_excerpt(record: dict, budget: int) -> tuple[dict, bool]:
    """A preference pair with a third of the budget for each side, so that both answers show beside each other."""
    shown, cut = {}, False
    for side in ("prompt", "chosen", "rejected"):
        shown[side], shortened = _messages_within(record[side], budget // 3)
        cut = cut or shortened
    return shown, cut


def _messages_within(messages: list[dict], budget: int) -> tuple[list[dict], bool]:
    """(the messages that fit the budget, the last of them cut if need be; whether any was cut or left out)."""
    shown = []
    for message in messages:
        if budget <= 0:
            return shown, True
        content, budget, shortened = _cut(message["content"], budget)
        shown.append({**message, "content": content})
        if shortened:
            return shown, True
    return shown, False


def _cut(text: str, budget: int) -> tuple[str, int, bool]:
    """(text within budget, the budget left, whether it was cut)."""
    if len(text) <= budget:
        return text, budget - len(text), False
    return text[:max(budget, 0)] + MARKER.format(len(text) - max(budget, 0)), 0, True
