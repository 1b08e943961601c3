"""The questions that follow from labels, masks and names, in MMAD's wording.

* Anomaly Detection (every image): "Is there any defect in the object?" Yes./No.
* Defect Classification (defective images whose defect is named, in categories with at least two
  defect types): the defect's readable name (``broken_large`` -> "Broken large."); distractors from the
  category's other defects first, then common defect names that share no word with any of the
  category's defects. (A common name is never right, so a category with fewer than four defect types
  gives a rule that knows the category an edge; the data check shows how much.)
* Defect Localization (defective images with a mask): where the mask lies on the 3x3 grid. One cell
  holding most of it (:data:`DOMINANT`) -> that region; two cells holding nearly all of it
  (:data:`PAIR`) -> "Top left and top." against three other pairs; spread over more (a defect across
  the whole object) -> not asked, and reported. Distractors never name a cell the mask touches
  noticeably (:data:`TOUCH`), so no option is partly right.
* Object Classification (normal images, when there are at least two categories): the category's
  readable name; distractors from the other categories first, then common product names (with fewer
  than four categories these are never right, which the data check reports as an edge or a leak).

Every question records how it was made (``origin``); its answer's position is drawn for it alone, so
reading the file in order tells nothing.
"""

from __future__ import annotations

import re
from itertools import combinations
from typing import Any

import numpy as np

from mmeval.data.synthetic.questions import mcq as synthetic_mcq
from mmeval.regions import region_name

DETECTION = "Is there any defect in the object?"
LEAD = "There is a defect in the object. "
CLASSIFY = LEAD + "What is the type of the defect?"
LOCATE = LEAD + "Where is the defect?"
DESCRIBE = LEAD + "What is the appearance of the defect?"
EFFECT = LEAD + "What is the effect of the defect?"
OBJECT = "What kind of product is in the image?"
DOMINANT = 0.6  # share of the mask one cell must hold to be the answer
PAIR = 0.85  # share two cells must hold together to be the answer
TOUCH = 0.05  # a cell holding more than this share of the mask is never a distractor

COMMON_DEFECTS = ("Scratch", "Crack", "Hole", "Dent", "Stain", "Contamination", "Missing part", "Deformation",
                  "Discoloration", "Cut", "Bent part", "Foreign object", "Misalignment", "Broken part", "Burn mark",
                  "Chip", "Fold", "Print error")
COMMON_PRODUCTS = ("Bottle", "Screw", "Cable", "Capsule", "Circuit board", "Fabric", "Metal plate", "Tile",
                   "Wood panel", "Connector", "Gear", "Washer", "Zipper", "Toothbrush", "Pill", "Transistor")
CELLS = tuple((r, c) for r in range(3) for c in range(3))
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"a", "an", "the", "of", "on", "in", "and", "or", "with", "part", "defect"}

Item = dict[str, Any]


def readable(key: str) -> str:
    """A folder or label name as an option: ``broken_large`` -> ``Broken large.``."""
    text = re.sub(r"[_\-]+", " ", key).strip()
    text = re.sub(r"\s+", " ", text)
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else ""


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower())) - _STOP


def mcq(question: str, correct: str, distractors: list[str], qtype: str, rng: np.random.Generator,
        origin: dict[str, Any]) -> Item:
    """A multiple-choice question laid out as the bundled benchmark's are, recording how it was made."""
    item = synthetic_mcq(question, correct, distractors, qtype, rng)
    del item["annotation"]
    item["origin"] = origin
    return item


def _draw(pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    return [pool[int(i)] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)] if pool else []


def distractors(correct: str, own: list[str], fillers: tuple[str, ...], k: int, rng: np.random.Generator,
                avoid: list[str]) -> list[str]:
    """``k`` distinct wrong options: from ``own`` first (drawn at random), then from ``fillers``.

    A filler is used only when it shares no word with ``correct`` or any text in ``avoid`` (so a common
    name never rephrases a right answer).
    """
    seen = {correct.lower()}
    pool = [t for t in dict.fromkeys(own) if t.lower() not in seen]
    chosen = _draw(pool, k, rng)
    seen |= {t.lower() for t in chosen}
    if len(chosen) < k:
        taken = words(correct).union(*(words(a) for a in avoid)) if avoid else words(correct)
        extra = [readable(f) for f in fillers if not (words(f) & taken) and readable(f).lower() not in seen]
        chosen += _draw(extra, k - len(chosen), rng)
    return chosen


def detection(is_normal: bool, rng: np.random.Generator) -> Item:
    return mcq(DETECTION, "No." if is_normal else "Yes.", ["Yes." if is_normal else "No."], "Anomaly Detection", rng,
               {"method": "rule", "from": "label"})


def classification(label: str, category_defects: list[str], rng: np.random.Generator) -> Item | None:
    """Defect Classification, or None when three distinct distractors cannot be found."""
    return _naming(label, category_defects, COMMON_DEFECTS, CLASSIFY, "Defect Classification", "defect name", rng)


def _naming(raw: str, names: list[str], common: tuple[str, ...], question: str, qtype: str, source: str,
            rng: np.random.Generator) -> Item | None:
    """Which of these names is right: distractors from the other ``names``, then ``common`` ones; None
    when three distinct ones cannot be found."""
    correct = readable(raw)
    own = [readable(n) for n in names if readable(n).lower() != correct.lower()]
    wrong = distractors(correct, own, common, 3, rng, [readable(n) for n in names])
    if len(wrong) < 3:
        return None
    return mcq(question, correct, wrong, qtype, rng, {"method": "rule", "from": source})


def region_text(cells: list[tuple[int, int]]) -> str:
    """``[(0, 0)]`` -> "Top left."; two cells in reading order -> "Top left and center."."""
    names = [region_name(*c) for c in sorted(cells)]
    text = " and ".join(names)
    return text[:1].upper() + text[1:] + "."


def localization(shares: np.ndarray, rng: np.random.Generator) -> tuple[Item | None, str]:
    """Defect Localization from the mask's share per cell; (None, why) when the mask gives no single answer."""
    flat = {cell: float(shares[cell]) for cell in CELLS}
    if not sum(flat.values()):
        return None, "the mask is empty"
    order = sorted(CELLS, key=lambda c: (-flat[c], c))
    free = [c for c in CELLS if flat[c] <= TOUCH]
    origin = {"method": "rule", "from": "mask"}
    if flat[order[0]] >= DOMINANT:
        answer = [order[0]]
        pool = [[c] for c in free]
    elif flat[order[0]] + flat[order[1]] >= PAIR:
        answer = sorted(order[:2])
        pool = [sorted(p) for p in combinations(free, 2)]
        adjacent = _adjacent(answer)
        pool = [p for p in pool if _adjacent(p) == adjacent] or pool
    else:
        touched = sum(v > TOUCH for v in flat.values())
        return None, f"the defect spreads over {touched} of the 9 regions (the whole object): no single answer"
    if len(pool) < 3:
        return None, "the defect touches too many regions to offer three wrong ones"
    wrong = _draw([region_text(p) for p in pool], 3, rng)
    return mcq(LOCATE, region_text(answer), wrong, "Defect Localization", rng, origin), ""


def _adjacent(cells: list[tuple[int, int]]) -> bool:
    (r1, c1), (r2, c2) = cells
    return max(abs(r1 - r2), abs(c1 - c2)) == 1


def object_classification(category: str, categories: list[str], rng: np.random.Generator) -> Item | None:
    return _naming(category, categories, COMMON_PRODUCTS, OBJECT, "Object Classification", "category name", rng)
