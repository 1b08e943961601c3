"""Domain knowledge in MMAD's ``domain_knowledge.json`` shape, read into entries a retriever can rank.

The file maps dataset -> category -> entry key (``good`` for the normal product, else a defect name)
-> text. MMAD's texts open with a ``<Title>`` line followed by ``Description: ...``; other texts are
taken whole. The file's dataset names need not match the data's: MMAD's file says ``MVTec`` where its
image paths say ``DS-MVTec`` (and, after a data fix, ``MVTec-AD``). :data:`DATASET_ALIASES` is the one
place that maps the names images use to the names knowledge files use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mmeval.errors import InputError
from mmeval.jsonsafe import parse_json

#: dataset name in image paths -> the name a knowledge file may use for it instead
DATASET_ALIASES: dict[str, str] = {"DS-MVTec": "MVTec", "MVTec-AD": "MVTec"}

_TITLED = re.compile(r"^\s*<(?P<title>[^>\n]+)>\s*\n\s*(?:Description:\s*)?(?P<body>.*)$", re.DOTALL)


@dataclass(frozen=True)
class Entry:
    """One knowledge text: about the normal product (``key == "good"``) or one defect type."""

    dataset: str
    category: str
    key: str
    title: str
    body: str

    @property
    def text(self) -> str:
        """The entry as a model reads it: its title, then its description."""
        return f"{self.title}: {self.body}" if self.title else self.body

    @property
    def ident(self) -> str:
        return f"{self.dataset}/{self.category}/{self.key}"


def parse_entry(dataset: str, category: str, key: str, text: str) -> Entry:
    m = _TITLED.match(text)
    if m:
        return Entry(dataset, category, key, m["title"].strip(), " ".join(m["body"].split()))
    return Entry(dataset, category, key, key.replace("_", " ").capitalize(), " ".join(text.split()))


class KnowledgeBase:
    """Every entry of a knowledge file, addressable by the data's (dataset, category)."""

    def __init__(self, entries: list[Entry], source: Path) -> None:
        self.entries = entries
        self.source = source
        self._by_category: dict[tuple[str, str], list[Entry]] = {}
        for e in entries:
            self._by_category.setdefault((e.dataset, e.category), []).append(e)

    @classmethod
    def load(cls, path: Path) -> KnowledgeBase:
        """Read and check a knowledge file; any problem is an InputError naming the file and the place."""
        if not path.is_file():
            raise InputError(f"--boost-arg knowledge: no knowledge file at '{path}' (MMAD's domain_knowledge.json "
                             "shape: dataset -> category -> 'good' or defect name -> text)")
        try:
            data = parse_json(path.read_bytes(), f"{path}: not a readable JSON knowledge file")
        except OSError as exc:
            raise InputError(f"{path}: not a readable JSON knowledge file ({exc.strerror or exc})") from None
        if not isinstance(data, dict) or not data:
            raise InputError(f"{path}: expected a JSON object of datasets (dataset -> category -> key -> text)")
        entries = []
        for dataset, categories in data.items():
            if not isinstance(categories, dict):
                raise InputError(f"{path}: '{dataset}' should map categories to entries")
            for category, items in categories.items():
                if not isinstance(items, dict):
                    raise InputError(f"{path}: '{dataset}/{category}' should map entry names to texts")
                for key, text in items.items():
                    if not isinstance(text, str) or not text.strip():
                        raise InputError(f"{path}: '{dataset}/{category}/{key}' should be a non-empty text")
                    entries.append(parse_entry(dataset, category, key, text))
        return cls(entries, path)

    def datasets(self) -> set[str]:
        return {e.dataset for e in self.entries}

    def for_category(self, dataset: str, category: str) -> list[Entry]:
        """The entries of the data's (dataset, category): the dataset's own name first, then its alias."""
        found = self._by_category.get((dataset, category))
        if found is None and dataset in DATASET_ALIASES:
            found = self._by_category.get((DATASET_ALIASES[dataset], category))
        return list(found or [])
