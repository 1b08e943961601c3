"""Writing a benchmark from a scanned source: images, masks, questions, templates, README, build report.

The output follows MMAD's layout, keyed by the query image's path below the output folder::

    DATASET/CATEGORY/train/good/NAME              normal templates
    DATASET/CATEGORY/test/good/NAME               normal images asked about
    DATASET/CATEGORY/test/DEFECT/NAME             defective images asked about
    DATASET/CATEGORY/ground_truth/DEFECT/STEM_mask.png   their masks (L mode, 0/255)
    mmad.json  README.md  build_report.json  [domain_knowledge.json]

Images are hard links to the source files where the file system allows (no extra disk), copies
otherwise; masks are rewritten as 0/255 PNGs. Each image's questions draw from a generator seeded by
the build seed and the image's key, so the same source, options and seed give byte-identical files.
The build happens in a temporary folder that replaces the output only when complete; an existing
output is replaced only when an earlier build wrote it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.builders import questions as rules
from mmeval.builders.images import ImageProblem, cell_shares, place, read_mask, thumbnail, write_mask
from mmeval.builders.knowledge import Knowledge, descriptive
from mmeval.builders.options import BUILT_BY, ORDER, REPORT, BuildOptions, BuildResult
from mmeval.builders.readme import readme
from mmeval.builders.sources import Category, Query, Skip, Source
from mmeval.errors import InputError


@dataclass
class _Image:
    key: str
    query: Query
    path: Path  # in the build folder
    size: tuple[int, int]
    thumb: np.ndarray
    mask_rel: str = ""
    shares: np.ndarray | None = None
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def image_rng(seed: int, key: str, stream: int = 0) -> np.random.Generator:
    """The generator of one image's questions: the build seed and the image's key (and a stream)."""
    return np.random.default_rng([seed, zlib.crc32(key.encode()), stream])


#: what a build writes at the top of its output, besides the dataset folder
TOP_FILES = frozenset({"mmad.json", "README.md", REPORT, "data_check.json", "data_check.csv",
                       "domain_knowledge.json"})


def _check_out(out: Path) -> None:
    """``out`` may be new, empty, or an earlier build's output holding nothing else (it is then replaced)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file")
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        report = json.loads((out / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = None
    if not isinstance(report, dict) or report.get("built_by") != BUILT_BY:
        raise InputError(f"--out {out}: the folder holds other files; give an empty or new folder (a folder an "
                         "earlier 'mmeval build' wrote is replaced)")
    other = sorted(p.name for p in out.iterdir() if p.name not in TOP_FILES | {str(report.get("dataset"))})
    if other:
        raise InputError(f"--out {out}: an earlier build wrote it, but it also holds {', '.join(other[:5])}, which "
                         "the build did not write; move them away or give another folder")


def build(source: Source, out: Path, options: BuildOptions | None = None, *, progress: bool = False) -> BuildResult:
    """Write the benchmark of ``source`` into ``out``; return what was built and what was skipped."""
    options = options or BuildOptions()
    out = Path(out).expanduser().resolve()
    _check_out(out)
    knowledge = Knowledge.read(options.knowledge) if options.knowledge else None
    writer = None
    if options.writer:
        from mmeval.builders.writer import Writer

        writer = Writer(options.writer, options.writer_args, seed=options.seed, attempts=options.writer_attempts,
                        concurrency=options.writer_concurrency)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        result = _build(source, tmp, out, options, knowledge, writer, progress)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def _build(source: Source, tmp: Path, out: Path, options: BuildOptions, knowledge: Knowledge | None,
           writer: Any, progress: bool) -> BuildResult:
    skipped = list(source.skipped)
    names = [c.name for c in source.categories]
    total = sum(len(c.templates) + len(c.queries) for c in source.categories)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"building from {source.root.name}", unit="img", file=sys.stderr)
    records: dict[str, dict[str, Any]] = {}
    images: list[_Image] = []
    jobs: list[Any] = []
    knowledge_out: dict[str, dict[str, dict[str, str]]] = {}
    if len(names) < 2:
        skipped.append(Skip(", ".join(names) or source.dataset, "Object Classification",
                            "only one category: its answer would always be the same (needs at least two)"))
    for cat in source.categories:
        prefix = f"{source.dataset}/{cat.name}"
        templates = _templates(cat, prefix, tmp, options, skipped, bar)
        if not templates:
            skipped.append(Skip(prefix, "category", "none of its template images could be read"))
            continue
        if knowledge is not None and (raw := knowledge.raw_category(source.dataset, cat.name)):
            knowledge_out.setdefault(source.dataset, {})[cat.name] = raw
        defects = sorted({lb for q in cat.queries for lb in q.labels})
        for q in cat.queries:
            img = _query(q, prefix, tmp, options, skipped)
            if bar is not None:
                bar.update()
            if img is None:
                continue
            _rule_questions(img, cat, prefix, defects, names, options.seed, skipped)
            if q.defect is not None and knowledge is not None and writer is None:
                _knowledge_questions(img, knowledge, source.dataset, cat.name, options.seed, skipped)
            if writer is not None:
                jobs += _jobs(img, cat.name, knowledge, source.dataset, tmp / prefix)
            records[img.key] = {"image_path": img.key[len(prefix) + 1:], "conversation": [],
                                "mask_path": img.mask_rel or None,
                                **_template_lists(img, templates, options, prefix)}
            images.append(img)
    if bar is not None:
        bar.close()
    writer_stats = None
    if writer is not None and jobs:
        print(f"mmeval: {options.writer} writes {len(jobs)} question(s) ...", file=sys.stderr, flush=True)
        outcomes = writer.write(jobs, {j.id: image_rng(options.seed, j.key, 1 + ORDER.index(j.qtype)) for j in jobs})
        by_id = {img.key: img for img in images}
        for job in jobs:
            res = outcomes[job.id]
            if res.item is not None:
                by_id[job.key].items.setdefault(job.qtype, []).append(res.item)
            else:
                skipped.append(Skip(job.key, job.qtype, f"the writer failed: {res.error}"))
        writer_stats = writer.stats()
    elif writer is not None:
        writer_stats = writer.stats()
    if not records:
        why = "; ".join(f"{s.item}: {s.reason}" for s in skipped[:3]) or "the source holds no images"
        raise InputError(f"{source.root}: nothing to build ({why})")
    for img in images:
        records[img.key]["conversation"] = [item for qtype in ORDER for item in img.items.get(qtype, [])]
    counts: dict[str, int] = {t: 0 for t in ORDER}
    for rec in records.values():
        for item in rec["conversation"]:
            counts[item["type"]] += 1
    json_path = tmp / "mmad.json"
    json_path.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if knowledge_out:
        (tmp / "domain_knowledge.json").write_text(json.dumps(knowledge_out, indent=1, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")
    result = BuildResult(out, out / "mmad.json", len(records), sum(counts.values()), counts, skipped, writer_stats)
    report = {"built_by": BUILT_BY, "layout": source.layout, "source": str(source.root), "dataset": source.dataset,
              "seed": options.seed, "template_count": options.template_count,
              "knowledge": str(options.knowledge) if options.knowledge else None, "writer": options.writer,
              "writer_attempts": options.writer_attempts if options.writer else None,
              "images": result.images, "questions": result.questions, "counts": counts,
              "categories": [c.name for c in source.categories], "writer_stats": _stable(writer_stats),
              "skipped": [s.as_dict() for s in skipped]}
    (tmp / REPORT).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(readme(source, options, result), encoding="utf-8")
    return result


def _stable(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """What of the writer's statistics describes the questions (not this build's requests or the cache's path)."""
    if stats is None:
        return None
    return {k: stats[k] for k in ("model", "base_url") if k in stats}


def _templates(cat: Category, prefix: str, tmp: Path, options: BuildOptions, skipped: list[Skip],
               bar: Any) -> list[tuple[str, np.ndarray]]:
    out = []
    for src, rel in cat.templates:
        if bar is not None:
            bar.update()
        try:
            thumb, _ = thumbnail(src)
        except ImageProblem as exc:
            skipped.append(Skip(str(src), "template", str(exc)))
            continue
        place(src, tmp / prefix / rel, options.link)
        out.append((f"{prefix}/{rel}", thumb))
    return out


def _query(q: Query, prefix: str, tmp: Path, options: BuildOptions, skipped: list[Skip]) -> _Image | None:
    try:
        thumb, size = thumbnail(q.source)
    except ImageProblem as exc:
        skipped.append(Skip(str(q.source), "image", str(exc)))
        return None
    key = f"{prefix}/{q.out_rel}"
    dest = tmp / key
    place(q.source, dest, options.link)
    img = _Image(key, q, dest, size, thumb)
    if q.defect is None:
        return img
    if q.mask is None:
        skipped.append(Skip(key, "Defect Localization", "no mask for this defective image"))
        return img
    try:
        mask = read_mask(q.mask, size)
    except ImageProblem as exc:
        skipped.append(Skip(str(q.mask), "Defect Localization", f"mask: {exc}"))
        return img
    if not mask.any():
        skipped.append(Skip(key, "Defect Localization", "the mask is empty"))
        return img
    stem = Path(q.out_rel).stem
    folder = Path(q.out_rel).parent.name
    img.mask_rel = f"ground_truth/{folder}/{stem}_mask.png"
    write_mask(mask, tmp / prefix / img.mask_rel)
    img.shares = cell_shares(mask)
    return img


def _rule_questions(img: _Image, cat: Category, prefix: str, defects: list[str], names: list[str], seed: int,
                    skipped: list[Skip]) -> None:
    rng = image_rng(seed, img.key)
    q = img.query
    add = img.items.setdefault
    add("Anomaly Detection", []).append(rules.detection(q.defect is None, rng))
    if q.defect is None:
        if len(names) >= 2:
            item = rules.object_classification(cat.name, names, rng)
            if item is not None:
                add("Object Classification", []).append(item)
        return
    if len(q.labels) == 1 and len(defects) < 2:
        skipped.append(Skip(img.key, "Defect Classification", f"{cat.name} has one defect type only: its answer "
                                                              "would always be the same"))
    elif len(q.labels) == 1:
        item = rules.classification(q.labels[0], defects, rng)
        if item is None:
            skipped.append(Skip(img.key, "Defect Classification", "fewer than three other defect names to offer"))
        else:
            add("Defect Classification", []).append(item)
    else:
        why = (f"several defect types ({', '.join(q.labels)}): no single answer" if q.labels
               else "the defect type is not known (no labelled sub-folder or label)")
        skipped.append(Skip(img.key, "Defect Classification", why))
    if img.shares is not None:
        item, why = rules.localization(img.shares, rng)
        if item is None:
            skipped.append(Skip(img.key, "Defect Localization", why))
        else:
            add("Defect Localization", []).append(item)


def _knowledge_questions(img: _Image, kb: Knowledge, dataset: str, category: str, seed: int,
                         skipped: list[Skip]) -> None:
    labels = img.query.labels
    if len(labels) != 1:
        skipped.append(Skip(img.key, "Defect Description", "the defect type is not known or not single: the "
                                                           "knowledge file cannot say which entry applies"))
        return
    items, missing = descriptive(kb, dataset, category, labels[0], image_rng(seed, img.key, 8))
    for item in items:
        img.items.setdefault(item["type"], []).append(item)
    for qtype, why in missing:
        skipped.append(Skip(img.key, qtype, why))


def _jobs(img: _Image, category: str, kb: Knowledge | None, dataset: str, folder: Path) -> list[Any]:
    from mmeval.builders.knowledge import first_sentence, norm
    from mmeval.builders.writer import Job

    product = rules.readable(category).rstrip(".").lower()
    entries = kb.category(dataset, category) if kb is not None else {}
    mask = folder / img.mask_rel if img.mask_rel else None
    if img.query.defect is None:
        good = entries.get("good")
        context = first_sentence(good.description) if good else ""
        return [Job(f"{img.key}#Object Analysis", img.key, "Object Analysis", img.path, None, product,
                    context=context)]
    label = img.query.labels[0] if len(img.query.labels) == 1 else None
    entry = entries.get(norm(label)) if label else None
    context = first_sentence(entry.description) if entry else ""
    defect = rules.readable(label).rstrip(".").lower() if label else None
    return [Job(f"{img.key}#{qtype}", img.key, qtype, img.path, mask, product, defect, context)
            for qtype in ("Defect Description", "Defect Analysis")]


def _template_lists(img: _Image, templates: list[tuple[str, np.ndarray]], options: BuildOptions,
                    prefix: str) -> dict[str, list[str]]:
    """similar_templates (closest thumbnails first) and random_templates (a seeded draw)."""
    k = min(options.template_count, len(templates))
    paths = [p for p, _ in templates]
    thumbs = np.stack([t for _, t in templates])
    mse = ((thumbs - img.thumb) ** 2).mean(axis=(1, 2))
    similar = [paths[int(i)] for i in np.argsort(mse, kind="stable")[:k]]
    rng = image_rng(options.seed, img.key, 9)
    random = [paths[int(i)] for i in rng.permutation(len(paths))[:k]]
    return {"similar_templates": similar, "random_templates": random}
