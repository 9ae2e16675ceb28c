"""Model prices in US dollars per million tokens (input, output), snapshotted on each record.

Longest matching prefix wins, so dated variants (``gpt-4o-mini-2024-07-18``) find their family.
Local models cost nothing. ``MODEL_PRICES`` in settings (JSON) adds or overrides entries.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

DEFAULT_PRICES: dict[str, tuple[str, str]] = {
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-3.5-turbo": ("0.50", "1.50"),
    "o3-mini": ("1.10", "4.40"),
    "o4-mini": ("1.10", "4.40"),
    "text-embedding-3-small": ("0.02", "0"),
    "text-embedding-3-large": ("0.13", "0"),
    "text-embedding-ada-002": ("0.10", "0"),
    "smollm2": ("0", "0"),
    "all-minilm-l6-v2": ("0", "0"),
}

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)


def price_for(model: str) -> tuple[Decimal, Decimal]:
    table = {**DEFAULT_PRICES, **getattr(settings, "MODEL_PRICES", {})}
    name = model.lower().split("/")[-1]
    match = max((prefix for prefix in table if name.startswith(prefix)), key=len, default=None)
    if match is None:
        return ZERO, ZERO
    inp, out = table[match]
    return Decimal(str(inp)), Decimal(str(out))


def cost_of(prompt_tokens: int, completion_tokens: int, prices: tuple[Decimal, Decimal]) -> Decimal:
    return (prompt_tokens * prices[0] + completion_tokens * prices[1]) / MILLION
