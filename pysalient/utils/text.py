"""Plain-text helpers for what the command line prints."""

from __future__ import annotations

import re


def plain_text(text: str) -> str:
    """``text`` without reST inline markup: literals (````x````), roles (``:class:`x```) and emphasis."""
    text = re.sub(r":[a-z]+:`~([^`]+)`", lambda match: match.group(1).split(".")[-1], text)
    text = re.sub(r":[a-z]+:`([^`]+)`", r"\1", text)
    return text.replace("``", "").replace("`", "").replace("**", "")
