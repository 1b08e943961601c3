"""Seeded option shuffling.

The reference scripts shuffled options with an unseeded ``random.shuffle``, so no two runs asked
the same questions. Here the permutation of each question depends only on the run seed and the
question id: it is reproducible, and independent of ``--limit``, batch size or process count.
"""

from __future__ import annotations

import hashlib
import random

from mmeval.data.schema import LETTERS


def question_rng(seed: int, qid: str, purpose: str = "options") -> random.Random:
    digest = hashlib.sha256(f"{purpose}:{seed}:{qid}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def shuffle_options(options: dict[str, str], answer: str, seed: int, qid: str) -> tuple[dict[str, str], str]:
    """Permute option texts and re-letter them A, B, ...; return the new options and answer letter."""
    keys = list(options)
    order = keys[:]
    question_rng(seed, qid).shuffle(order)
    new = {LETTERS[i]: options[k] for i, k in enumerate(order)}
    return new, LETTERS[order.index(answer)]
