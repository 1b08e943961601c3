"""API keys: read from a named environment variable, never stored, scrubbed from every string.

An option holds only the *name* of the variable (``-M api_key_env=...``), so the key never enters the
run config, ``run.json``, predictions, the cache or the report. The engine passes every error message
and every returned text through a :class:`Scrubber` before it leaves the adapter, since servers like
to echo a rejected key back.
"""

from __future__ import annotations

import os
import re

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PIECE = 8  # characters: a piece of the key this long is scrubbed too (servers echo a key's head and tail)


def check_env_name(value: str) -> str:
    """``value`` when it can be an environment variable's name and does not look like a pasted key.

    The message never repeats the value: a user may have pasted the key itself.
    """
    looks_like_key = len(value) >= 24 and any(c.isdigit() for c in value) and any(c.islower() for c in value)
    if not _ENV_NAME.match(value) or looks_like_key:
        raise ValueError("expects the NAME of an environment variable (like OPENAI_API_KEY), not a key; "
                         "put the key into that variable")
    return value


def key_from_env(name: str) -> str:
    """The key in ``$name``, stripped; empty when the variable is unset or blank."""
    return os.environ.get(name, "").strip()


class Scrubber:
    """Removes the secret, and any :data:`PIECE`-character piece of it, from strings (as ``***``)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret or ""
        n = PIECE
        self.pieces = {self.secret[i:i + n] for i in range(len(self.secret) - n + 1)}  # empty when shorter

    def __call__(self, text: str | None) -> str | None:
        if not text or not self.secret:
            return text
        text = text.replace(self.secret, "***")
        if any(p in text for p in self.pieces):
            mask = [False] * len(text)
            for p in self.pieces:
                start = text.find(p)
                while start >= 0:
                    for i in range(start, start + len(p)):
                        mask[i] = True
                    start = text.find(p, start + 1)
            out, prev = [], False
            for ch, hidden in zip(text, mask, strict=True):
                if hidden:
                    if not prev:
                        out.append("***")
                else:
                    out.append(ch)
                prev = hidden
            text = "".join(out)
        return text

    def text(self, text: str) -> str:
        """The scrubbed text (a ``str`` in, a ``str`` out)."""
        return self(text) or ""
