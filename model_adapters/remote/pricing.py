"""What the tokens of a run cost: a price table and its lookup (an estimate, for the report)."""

from __future__ import annotations

from collections.abc import Mapping

Price = tuple[float, float]  # USD per 1M tokens: (input, output)

#: USD per 1M tokens (input, output), OpenAI list prices; an estimate (cached-input discounts ignored)
OPENAI_PRICES: dict[str, Price] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "chatgpt-4o-latest": (5.00, 15.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.5-preview": (75.00, 150.00),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
}


def price_for(model: str, table: Mapping[str, Price] = OPENAI_PRICES) -> Price | None:
    """Exact name, else the longest known name the model name starts with (dated snapshots); None if unknown.

    An organisation prefix (``org/model``) and the case are ignored.
    """
    name = model.lower().split("/")[-1]
    if name in table:
        return table[name]
    best = max((k for k in table if name.startswith(k + "-")), key=len, default=None)
    return table[best] if best else None


def estimated_cost(price: Price | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for the tokens at ``price``, rounded to a millionth; None when the price is unknown."""
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6, 6)
