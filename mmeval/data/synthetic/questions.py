"""The questions asked about each image, written so that only looking answers them.

* Every question's correct option sits at a position drawn on its own (never dealt from a deck, so
  reading the file in order tells nothing); the distractors come in random order.
* Anomaly Detection: "Yes."/"No.". Object Classification: the product's label and three others.
* Object Analysis: the attribute's answers on the product's four variants, so every option is right
  equally often; the question never names the product.
* Defect Classification, Description and Analysis: texts of the product's own defects, one distractor
  set per image shared by the three, so seeing them together tells nothing either.
* Defect Localization: the cell the defect was placed in (drawn uniformly beforehand) and three others.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmeval.data.schema import LETTERS
from mmeval.data.synthetic import board
from mmeval.data.synthetic.catalogue import DEFECTS, PRODUCTS, Attribute, Product
from mmeval.regions import region_name

Cell = tuple[int, int]
Question = dict[str, Any]
CELLS: tuple[Cell, ...] = tuple((r, c) for r in range(3) for c in range(3))
DETECTION = "Is there any defect in the object?"
LEAD = "There is a defect in the object. "


def mcq(question: str, correct: str, distractors: list[str], qtype: str, rng: np.random.Generator) -> Question:
    """A multiple-choice question with the correct option at a position drawn for it alone."""
    pos = int(rng.integers(len(distractors) + 1))
    others = [distractors[int(i)] for i in rng.permutation(len(distractors))]
    texts = others[:pos] + [correct] + others[pos:]
    return {"Question": question, "Answer": LETTERS[pos], "Options": dict(zip(LETTERS, texts, strict=False)),
            "type": qtype, "annotation": True}


def _sample(pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    return [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)]


def region_option(cell: Cell) -> str:
    """MMAD's wording of a grid cell: ``(0, 0)`` -> ``"Top left."``."""
    return region_name(*cell).capitalize() + "."


def _attribute(attr: Attribute, variant: int, rng: np.random.Generator) -> Question:
    """An Object Analysis question; one that names a region asks about a slot drawn for this image."""
    question, answer = attr.question, attr.answers[variant]
    if "{region}" in question:
        slot = int(rng.integers(9))
        question = question.format(region=region_name(*divmod(slot, 3)))
        answer = attr.answers[board.KINDS.index(board.kind_at(slot, variant))]
    return mcq(question, answer, [a for a in attr.answers if a != answer], attr.type, rng)


def normal_questions(product: Product, variant: int, rng: np.random.Generator) -> list[Question]:
    labels = [p.label for p in PRODUCTS if p.name != product.name]
    return [
        mcq(DETECTION, "No.", ["Yes."], "Anomaly Detection", rng),
        mcq("What kind of product is in the image?", product.label, _sample(labels, 3, rng),
            "Object Classification", rng),
        _attribute(product.structure, variant, rng),
        _attribute(product.colour, variant, rng),
    ]


def defect_questions(product: Product, defect: str, cell: Cell, rng: np.random.Generator) -> list[Question]:
    """The five questions about a defective image; its three text questions share one distractor set."""
    others = _sample([d for d in product.defects if d != defect], 3, rng)
    kind = DEFECTS[defect]
    cells = [region_option(c) for c in _sample_cells(cell, rng)]

    def texts(field: str) -> list[str]:
        return [getattr(DEFECTS[d], field) for d in others]

    return [
        mcq(DETECTION, "Yes.", ["No."], "Anomaly Detection", rng),
        mcq(LEAD + "What is the type of the defect?", kind.label, texts("label"), "Defect Classification", rng),
        mcq(LEAD + "Where is the defect?", region_option(cell), cells, "Defect Localization", rng),
        mcq(LEAD + "What is the appearance of the defect?", kind.appearance, texts("appearance"),
            "Defect Description", rng),
        mcq(LEAD + "What is the effect of the defect?", kind.effect, texts("effect"), "Defect Analysis", rng),
    ]


def _sample_cells(cell: Cell, rng: np.random.Generator) -> list[Cell]:
    pool = [c for c in CELLS if c != cell]
    return [pool[int(i)] for i in rng.choice(len(pool), size=3, replace=False)]
