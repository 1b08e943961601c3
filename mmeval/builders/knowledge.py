"""Descriptive questions from a knowledge file in MMAD's ``domain_knowledge.json`` shape.

The file maps dataset -> category -> {"good": text, DEFECT: text}; each text is a heading in angle
brackets and a ``Description:`` (MMAD's own file), optionally followed by an ``Effect:`` line::

    {"MyParts": {"bracket": {
        "good": " <Normal Characteristics>\\n Description: A bent steel bracket with two round holes.",
        "burr": " <Burr>\\n Description: A thin ridge of metal along a cut edge.\\n Effect: It can cut hands."}}}

From it, for a defective image whose defect has an entry:

* Defect Description: the first sentence of the defect's Description against those of the category's
  other defects (then of other categories' defects), so every option is a real description;
* Defect Analysis: the same with the ``Effect:`` lines, when the file has them.

A category is found under the benchmark's dataset name, else under any dataset that has it; defect
keys match their folder or label names ignoring case, spaces and underscores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.builders.questions import DESCRIBE, EFFECT, Item, distractors, mcq
from mmeval.errors import InputError
from mmeval.jsonsafe import parse_json

_TITLE = re.compile(r"^\s*<([^>]*)>")
_FIELD = re.compile(r"^\s*(Description|Effect)\s*:\s*", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass(frozen=True)
class Entry:
    title: str
    description: str
    effect: str


def norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


def parse_entry(text: str) -> Entry:
    """A knowledge text: ``<Title>`` then ``Description:`` (and ``Effect:``) lines; a text without fields is
    all description."""
    title = ""
    m = _TITLE.match(text)
    if m:
        title, text = m.group(1).strip(), text[m.end():]
    fields: dict[str, list[str]] = {"description": [], "effect": []}
    current = "description"
    for line in text.splitlines():
        f = _FIELD.match(line)
        if f:
            current = f.group(1).lower()
            line = line[f.end():]
        if line.strip():
            fields[current].append(line.strip())
    return Entry(title, " ".join(fields["description"]), " ".join(fields["effect"]))


def first_sentence(text: str) -> str:
    return _SENTENCE.split(text.strip(), maxsplit=1)[0].strip()


class Knowledge:
    """A knowledge file, read once; entries by (dataset, category, defect)."""

    def __init__(self, raw: dict[str, Any], path: Path) -> None:
        self.raw = raw
        self.path = path
        self.entries: dict[str, dict[str, dict[str, Entry]]] = {}
        for dataset, cats in raw.items():
            if not isinstance(cats, dict):
                raise InputError(f"{path}: '{dataset}' should map categories to entries")
            for cat, items in cats.items():
                if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
                    raise InputError(f"{path}: {dataset}/{cat} should map 'good' and defect names to texts")
                self.entries.setdefault(dataset, {})[norm(cat)] = {norm(k): parse_entry(v) for k, v in items.items()}

    @classmethod
    def read(cls, path: Path) -> Knowledge:
        path = Path(path).expanduser()
        try:
            raw = parse_json(path.read_bytes(), f"--knowledge {path}")
        except FileNotFoundError:
            raise InputError(f"--knowledge: no file '{path}'") from None
        except OSError as exc:
            raise InputError(f"--knowledge {path}: not a JSON file ({exc.strerror or exc})") from None
        if not isinstance(raw, dict):
            raise InputError(f"--knowledge {path}: expected MMAD's shape (dataset -> category -> entries)")
        return cls(raw, path)

    def category(self, dataset: str, category: str) -> dict[str, Entry]:
        """The entries of a category: under ``dataset`` first, else the first dataset (sorted) that has it."""
        key = norm(category)
        if key in self.entries.get(dataset, {}):
            return self.entries[dataset][key]
        for name in sorted(self.entries):
            if key in self.entries[name]:
                return self.entries[name][key]
        return {}

    def raw_category(self, dataset: str, category: str) -> dict[str, str]:
        """The file's own texts for a category (for the benchmark's domain_knowledge.json)."""
        key = norm(category)
        for name in [dataset, *sorted(self.raw)]:
            for cat, items in (self.raw.get(name) or {}).items():
                if norm(cat) == key:
                    return dict(items)
        return {}

    def defect_texts(self, field: str, exclude_category: str | None = None) -> list[str]:
        """Every defect's text of ``field`` (the first sentence), category by category, for distractors."""
        out = []
        for dataset in sorted(self.entries):
            for cat in sorted(self.entries[dataset]):
                if cat == (norm(exclude_category) if exclude_category else None):
                    continue
                for key in sorted(self.entries[dataset][cat]):
                    text = getattr(self.entries[dataset][cat][key], field)
                    if key != "good" and text:
                        out.append(first_sentence(text))
        return out


def descriptive(kb: Knowledge, dataset: str, category: str, defect: str,
                rng: np.random.Generator) -> tuple[list[Item], list[tuple[str, str]]]:
    """(questions, [(type, why not asked)]) for one defective image from the knowledge file."""
    entries = kb.category(dataset, category)
    entry = entries.get(norm(defect))
    items: list[Item] = []
    missing: list[tuple[str, str]] = []
    origin = {"method": "knowledge", "file": kb.path.name}
    for qtype, question, field in (("Defect Description", DESCRIBE, "description"),
                                   ("Defect Analysis", EFFECT, "effect")):
        text = first_sentence(getattr(entry, field)) if entry else ""
        if not text:
            label = "Description" if field == "description" else "Effect"
            missing.append((qtype, f"the knowledge file has no {label} for {category}/{defect}"))
            continue
        own = [first_sentence(getattr(e, field)) for k, e in sorted(entries.items())
               if k not in ("good", norm(defect)) and getattr(e, field)]
        wrong = distractors(text, own, (), 3, rng, [])
        if len(wrong) < 3:
            others = [t for t in kb.defect_texts(field, category) if t.lower() != text.lower() and t not in wrong]
            wrong += [others[int(i)] for i in rng.choice(len(others), size=min(3 - len(wrong), len(others)),
                                                         replace=False)] if others else []
        if len(wrong) < 3:
            missing.append((qtype, f"the knowledge file has fewer than four distinct {field} texts to offer"))
            continue
        items.append(mcq(question, text, wrong, qtype, rng, origin))
    return items, missing
