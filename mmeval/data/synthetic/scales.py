"""How big the synthetic benchmark is built: ``demo`` for a quick look, ``standard`` for tight intervals.

A scale counts images per product: normal templates and normal query images per variant (four
variants), defective images per defect type (four types). Questions per product: four per normal
image, five per defective one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    templates: int  # normal templates per variant (the template lists hold up to 4 of them)
    normal: int  # normal query images per variant
    defective: int  # defective query images per defect type
    purpose: str


SCALES: dict[str, Scale] = {s.name: s for s in (
    Scale("demo", 4, 2, 3, "small enough for a demo in well under a minute"),
    Scale("standard", 6, 10, 15, "large enough for baselines with tight confidence intervals"),
)}
DEFAULT_SCALE = "demo"
