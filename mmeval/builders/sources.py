"""Reading a team's image folders: three layouts, one neutral description of what they hold.

``mvtec`` (the MVTec-AD layout)::

    ROOT/CATEGORY/train/good/*.png               normal images: the templates
    ROOT/CATEGORY/test/good/*.png                normal images to ask about
    ROOT/CATEGORY/test/DEFECT/*.png              defective images; the folder names the defect
    ROOT/CATEGORY/ground_truth/DEFECT/NAME_mask.png   their masks

``visa`` (VisA, with its split file)::

    ROOT/split_csv/1cls.csv                      object,split,label,image,mask (paths relative to ROOT)
    ROOT/OBJECT/image_anno.csv                   image,label,mask: the defect names (optional)

``folders`` (the plainest layout: good and bad images per product, masks optional)::

    ROOT/PRODUCT/good/*.png                      normal images
    ROOT/PRODUCT/bad/*.png or bad/DEFECT/*.png   defective images (a sub-folder names the defect)
    ROOT/PRODUCT/masks/...                       masks, mirroring bad/ (same name, or NAME_mask)
    ROOT/PRODUCT/templates/*.png                 optional: the templates (else some good images are)

ROOT may also be a single category (product). Everything is read in sorted order; what cannot be used
is listed with its reason (an empty category, a defective image without its mask ...).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from mmeval.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
LAYOUTS = ("mvtec", "visa", "folders")  # the readers below, by name (scan() picks one)
NORMAL = "good"  # MMAD: an image is normal when its path contains this


@dataclass(frozen=True)
class Skip:
    """Something left out of the benchmark, and why."""

    item: str  # an image, a category or a question, as the user knows it
    what: str  # "category", "image", "template" or a question type
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"item": self.item, "what": self.what, "reason": self.reason}


@dataclass(frozen=True)
class Query:
    """An image to ask about."""

    source: Path
    out_rel: str  # its path below <dataset>/<category>/ in the benchmark
    defect: str | None  # the defect's key (folder name); None for a normal image
    labels: tuple[str, ...] = ()  # defect names as the labels give them; empty when unknown
    mask: Path | None = None


@dataclass
class Category:
    name: str
    templates: list[tuple[Path, str]]  # (source, path below <dataset>/<category>/)
    queries: list[Query]


@dataclass
class Source:
    """What a folder holds, whatever its layout."""

    layout: str
    root: Path
    dataset: str
    categories: list[Category] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def mark_safe(name: str) -> str:
    """A path part that does not contain "good" (which would mark an image normal in the MMAD format)."""
    return name.replace(NORMAL, "Good")


def _find_mask(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}_mask", stem):
        for ext in IMAGE_EXTENSIONS:
            for cand in (folder / f"{name}{ext}", folder / f"{name}{ext.upper()}"):
                if cand.is_file():
                    return cand
    return None


def scan(layout: str, root: Path, *, dataset: str | None = None, seed: int = 0, template_share: float = 1 / 3,
         split_csv: Path | None = None) -> Source:
    """What ``root`` holds in ``layout``; ``dataset`` names the benchmark's first path part."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    root = root.resolve()
    name = mark_safe(dataset or root.name)
    if not name or "/" in name or name in (".", ".."):
        raise InputError(f"--name: '{dataset}' cannot be a folder name")
    if layout == "mvtec":
        return _mvtec(root, name)
    if layout == "visa":
        return _visa(root, name, split_csv)
    if layout == "folders":
        return _folders(root, name, seed, template_share)
    raise InputError(f"unknown layout '{layout}' (known: {', '.join(LAYOUTS)})")


# ------------------------------------------------------------------------------------------ MVTec


def _categories(root: Path, *markers: str) -> list[Path]:
    """The category folders under ``root``: those holding one of the ``markers`` sub-folders, in sorted order;
    ``root`` itself when it holds one (a single category)."""

    def is_category(folder: Path) -> bool:
        return any((folder / m).is_dir() for m in markers)

    if is_category(root):
        return [root]
    return [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_category(p)]


def _mvtec(root: Path, dataset: str) -> Source:
    src = Source("mvtec", root, dataset)
    for folder in _categories(root, "train", "test"):
        cat = mark_safe(folder.name)
        templates = [(p, f"train/good/{p.name}") for p in images_in(folder / "train" / "good")]
        queries = []
        for defect_dir in sorted(p for p in (folder / "test").iterdir() if p.is_dir()) \
                if (folder / "test").is_dir() else []:
            defect = None if defect_dir.name == NORMAL else defect_dir.name
            for img in images_in(defect_dir):
                if defect is None:
                    queries.append(Query(img, f"test/good/{img.name}", None))
                    continue
                mask = _find_mask(folder / "ground_truth" / defect, img.stem)
                queries.append(Query(img, f"test/{mark_safe(defect)}/{mark_safe(img.name)}", defect, (defect,), mask))
        _add(src, Category(cat, templates, queries), folder)
    if not src.categories and not src.skipped:
        raise InputError(f"{root}: no category in the MVTec layout (CATEGORY/train/good, CATEGORY/test/DEFECT)")
    return src


def _add(src: Source, cat: Category, folder: Path) -> None:
    if not cat.templates:
        src.skipped.append(Skip(str(folder), "category", "no normal template images (train/good, or good/ with too "
                                                         "few images): the questions need templates"))
    elif not cat.queries:
        src.skipped.append(Skip(str(folder), "category", "empty category: no images to ask about"))
    else:
        src.categories.append(cat)


# ------------------------------------------------------------------------------------------ VisA


def _read_csv(path: Path, needed: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read it as CSV ({exc})") from None
    columns = list(rows[0]) if rows else []
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(columns) or 'none'})")
    return rows


def _labels(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.replace(";", ",").split(",") if t.strip() and t.strip() != "normal")


def _visa(root: Path, dataset: str, split_csv: Path | None) -> Source:
    src = Source("visa", root, dataset)
    table = Path(split_csv).expanduser() if split_csv else root / "split_csv" / "1cls.csv"
    if not table.is_file():
        raise InputError(f"{table}: no split file (VisA's split_csv/1cls.csv: object,split,label,image,mask); give "
                         "another with --split-csv")
    rows = _read_csv(table, ("object", "split", "label", "image"))
    by_object: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_object.setdefault(row["object"], []).append(row)
    for obj in sorted(by_object):
        anno_path = root / obj / "image_anno.csv"
        anno = {r["image"]: _labels(r.get("label", "")) for r in _read_csv(anno_path, ("image", "label"))} \
            if anno_path.is_file() else {}
        templates: list[tuple[Path, str]] = []
        queries: list[Query] = []
        for row in by_object[obj]:
            image = root / row["image"]
            normal = row["label"].strip().lower() in ("normal", "good", "0")
            split = row["split"].strip().lower()
            if not image.is_file():
                src.skipped.append(Skip(row["image"], "image", f"listed in {table.name} but not found"))
                continue
            if split == "train":
                if normal:
                    templates.append((image, f"train/good/{image.name}"))
                continue
            if normal:
                queries.append(Query(image, f"test/good/{image.name}", None))
                continue
            mask_rel = (row.get("mask") or "").strip()
            mask = root / mask_rel if mask_rel and (root / mask_rel).is_file() else None
            labels = anno.get(row["image"], ())
            queries.append(Query(image, f"test/bad/{mark_safe(image.name)}", "bad", labels, mask))
        _add(src, Category(mark_safe(obj), templates, queries), root / obj)
    return src


# ------------------------------------------------------------------------------------------ folders


def _folders(root: Path, dataset: str, seed: int, share: float) -> Source:
    src = Source("folders", root, dataset)
    for folder in _categories(root, "good", "bad"):
        good = images_in(folder / "good", recursive=True)
        given = images_in(folder / "templates", recursive=True)
        base = folder / "templates" if given else folder / "good"
        if given:
            templates, normal = given, good
        elif len(good) >= 2:
            rng = np.random.default_rng([seed, 0x7E])
            n = min(len(good) - 1, max(1, round(share * len(good))))
            chosen = set(int(i) for i in rng.permutation(len(good))[:n])
            templates = [p for i, p in enumerate(good) if i in chosen]
            normal = [p for i, p in enumerate(good) if i not in chosen]
        else:
            templates, normal = [], good
        queries = [Query(p, f"test/good/{_flat(p, folder / 'good')}", None) for p in normal]
        for img in images_in(folder / "bad", recursive=True):
            rel = img.relative_to(folder / "bad")
            defect = rel.parts[0] if len(rel.parts) > 1 else None
            mask_dir = folder / "masks" / rel.parent
            mask = _find_mask(mask_dir, img.stem)
            key = mark_safe(defect) if defect else "bad"
            queries.append(Query(img, f"test/{key}/{mark_safe(_flat(img, folder / 'bad' / (defect or '')))}",
                                 defect or "bad", (defect,) if defect else (), mask))
        cat = Category(mark_safe(folder.name),
                       [(p, f"train/good/{_flat(p, base)}") for p in templates], queries)
        if not templates and good:
            src.skipped.append(Skip(str(folder), "category", f"only {len(good)} good image(s): at least 2 are needed "
                                                             "(one as a template, one to ask about), or a templates/ "
                                                             "folder"))
            continue
        _add(src, cat, folder)
    if not src.categories and not src.skipped:
        raise InputError(f"{root}: no product in the folders layout (PRODUCT/good/ and PRODUCT/bad/)")
    return src


def _flat(path: Path, base: Path) -> str:
    """A file name unique within its output folder: sub-folders below ``base`` joined with '_'."""
    rel = PurePosixPath(path.relative_to(base).as_posix())
    return "_".join(rel.parts)
