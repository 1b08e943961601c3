"""Is a benchmark a fair ruler? Blind baselines: rules that answer without ever opening an image.

A multiple-choice benchmark measures looking only if no question can be answered from its text. This
check tries, per question type, the rules a lazy test-taker would: the longest option, the shortest
one, the option text most often right elsewhere (counted on one half of the images, tested on the
other, and the other way round), the same knowing the product category, and a small text-only
classifier trained on question and option text (again half against half). Each rule sees the options
as a model does, after the seeded shuffle of ``mmeval run``. A rule far above chance is a leak: a
model could score without looking, and its score would not mean what the table says.

Per type the check reports chance, every rule with a 95 % confidence interval, and a verdict. It also
counts questions per dataset, category and type, and checks the answer letters for balance in the
file and after shuffling. Any ``mmad.json`` works, with or without its images: only text is read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from mmeval import tasks as task_registry
from mmeval.data.loading import NORMAL_MARK, question_id, read_json
from mmeval.data.schema import ImageRecord
from mmeval.errors import InputError
from mmeval.jsonsafe import json_safe
from mmeval.prompting.shuffle import shuffle_options
from mmeval.report.csvsafe import write_csv

CHECK_JSON, CHECK_CSV = "data_check.json", "data_check.csv"
MARGIN = 10.0  # points above chance beyond which a blind rule is a leak
Z95 = 1.959964
#: the role of the type whose answer *is* the category: rules that know the category are expected to ace it
CATEGORY_IS_ANSWER: task_registry.Role = "object-type"

Verdict = Literal["fair", "slight edge", "leak", "inconclusive"]


# ----------------------------------------------------------------------------------------- questions

@dataclass(frozen=True)
class Item:
    """One question as a blind rule sees it: text and shuffled options, plus what scoring needs."""

    source: int  # which benchmark (when several are pooled)
    image: str
    dataset: str
    category: str
    task: str
    question: str
    options: dict[str, str]  # after the seeded shuffle
    answer: str  # after the seeded shuffle
    file_answer: str  # the letter as written in the file
    is_normal: bool


def _items(source: int, path: Path, seed: int) -> tuple[list[Item], int]:
    """Every question of one mmad.json (images are not needed); records that break the format are counted."""
    items, skipped = [], 0
    for key, value in read_json(path).items():
        try:
            record = ImageRecord.model_validate(value)
        except ValidationError:
            skipped += 1
            continue
        parts = PurePosixPath(key).parts
        for i, q in enumerate(record.conversation):
            task = task_registry.resolve(q.type)
            options, answer = shuffle_options(dict(q.options), q.answer, seed, question_id(key, i))
            items.append(Item(source, key, parts[0], parts[1] if len(parts) > 2 else "", task.name if task else q.type,
                              q.question, options, answer, q.answer, NORMAL_MARK in key))
    return items, skipped


def mmad_json(data: str) -> Path:
    """The mmad.json a DATA argument names: the file itself, or the one in a directory."""
    path = Path(data).expanduser()
    if path.is_dir():
        path = path / "mmad.json"
    if not path.is_file():
        raise InputError(f"{path}: no such file (give an mmad.json, its directory, or 'synthetic[:SCALE]')")
    return path


def _half(item: Item, seed: int) -> int:
    """Which half of the images an item's image falls in (all questions of an image stay together)."""
    return hashlib.sha256(f"half:{seed}:{item.source}:{item.image}".encode()).digest()[0] & 1


# ------------------------------------------------------------------------------------------- rules

Choose = Callable[[Sequence[Item], Sequence[Item]], list[str]]  # (train, test) -> a letter per test item


def _by_length(longest: bool) -> Choose:
    def choose(train: Sequence[Item], test: Sequence[Item]) -> list[str]:
        sign = -1 if longest else 1
        return [min(it.options, key=lambda k: (sign * len(it.options[k]), k)) for it in test]

    return choose


def _most_often_right(knows_category: bool) -> Choose:
    """The option whose text was right most often when offered (Laplace-smoothed towards chance)."""

    def key(it: Item, text: str) -> tuple[str, ...]:
        return (it.task, it.category, text) if knows_category else (it.task, text)

    def choose(train: Sequence[Item], test: Sequence[Item]) -> list[str]:
        offered: Counter[tuple[str, ...]] = Counter()
        right: Counter[tuple[str, ...]] = Counter()
        for it in train:
            for letter, text in it.options.items():
                offered[key(it, text)] += 1
                right[key(it, text)] += letter == it.answer
        out = []
        for it in test:
            n = len(it.options)
            rate = {k: (right[key(it, t)] + 1) / (offered[key(it, t)] + n) for k, t in it.options.items()}
            out.append(max(sorted(rate), key=lambda k: rate[k]))
        return out

    return choose


def _pairs(doc: tuple[str, str]) -> list[str]:
    """Question-word x option-word pairs: lets a linear model learn which answers go with which wording."""
    q, o = (text.lower().split() for text in doc)
    return [f"{a}|{b}" for a in q for b in o]


def _classifier(train: Sequence[Item], test: Sequence[Item]) -> list[str]:
    """A logistic regression on option words, question words and their pairs, fitted on the train half.

    Word pairs are hashed (a fixed number of columns however long the texts) and liblinear fits the
    sparse problem, which keeps the whole check to a minute or two at MMAD's size.
    """
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
        HashingVectorizer,
        TfidfTransformer,
        TfidfVectorizer,
    )
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    def rows(items: Sequence[Item]) -> tuple[list[str], list[str], list[tuple[str, str]], list[bool]]:
        q, o, pairs, y = [], [], [], []
        for it in items:
            for letter, text in it.options.items():
                q.append(it.question)
                o.append(text)
                pairs.append((it.question, text))
                y.append(letter == it.answer)
        return q, o, pairs, y

    if not test:  # a type with a single question: one half holds it, the other nothing to answer
        return []
    tq, to, tp, ty = rows(train)
    if len(set(ty)) < 2:
        return [sorted(it.options)[0] for it in test]
    words = [TfidfVectorizer(ngram_range=(1, 2)), TfidfVectorizer(ngram_range=(1, 2))]
    pairs = HashingVectorizer(analyzer=_pairs, n_features=2 ** 18, alternate_sign=False, norm=None)
    weigh = TfidfTransformer()
    x_train = hstack([words[0].fit_transform(to), words[1].fit_transform(tq),
                      weigh.fit_transform(pairs.transform(tp))]).tocsr()
    used = np.unique(x_train.indices)  # hashed columns no training row touches only slow the fit down
    model = LogisticRegression(C=1.0, solver="liblinear", class_weight="balanced").fit(x_train[:, used], ty)
    eq, eo, ep, _ = rows(test)
    x_test = hstack([words[0].transform(eo), words[1].transform(eq), weigh.transform(pairs.transform(ep))]).tocsr()
    scores = model.decision_function(x_test[:, used])
    out, i = [], 0
    for it in test:
        letters = list(it.options)
        out.append(letters[int(np.argmax(scores[i:i + len(letters)]))])
        i += len(letters)
    return out


@dataclass(frozen=True)
class Rule:
    name: str
    knows_category: bool
    choose: Choose


RULES = (
    Rule("longest option", False, _by_length(True)),
    Rule("shortest option", False, _by_length(False)),
    Rule("most often right text", False, _most_often_right(False)),
    Rule("most often right text, knowing the category", True, _most_often_right(True)),
    Rule("text classifier", False, _classifier),
)


# ------------------------------------------------------------------------------------------ results

class RuleResult(BaseModel):
    task: str
    rule: str
    knows_category: bool
    counted: bool  # False where knowing the category is knowing the answer
    questions: int
    accuracy: float
    ci_low: float
    ci_high: float
    chance: float


class TaskVerdict(BaseModel):
    task: str
    questions: int
    chance: float
    best_rule: str
    best_accuracy: float
    ci_low: float
    ci_high: float
    verdict: Verdict


class LetterBalance(BaseModel):
    options: int  # questions with this many options
    order: Literal["file", "shuffled"]
    counts: dict[str, int]
    p_value: float  # chi-square test of uniform letters
    top_share: float  # share of the most common letter, in percent


class CountRow(BaseModel):
    dataset: str
    category: str
    task: str
    questions: int


class DataCheck(BaseModel):
    sources: list[str]
    seed: int
    images: int
    questions: int
    skipped_records: int
    margin: float
    counts: list[CountRow]
    letters: list[LetterBalance]
    rules: list[RuleResult]
    verdicts: list[TaskVerdict]
    blind_average: float  # mean over types of the best counted rule
    chance_average: float  # mean over types of chance


def _interval(correct: np.ndarray, z: float) -> tuple[float, float, float]:
    """Accuracy in percent and an Agresti-Coull interval (sane at 0 % and 100 %)."""
    n, c = len(correct), float(np.sum(correct))
    p = c / n
    pt = (c + z * z / 2) / (n + z * z)
    half = z * math.sqrt(pt * (1 - pt) / (n + z * z))
    return 100 * p, 100 * max(0.0, pt - half), 100 * min(1.0, pt + half)


def _score(correct: np.ndarray, groups: np.ndarray | None, z: float) -> tuple[float, float, float]:
    """Accuracy, or for balanced types the mean of the per-group accuracies (normal, anomalous)."""
    if groups is None or len(set(groups.tolist())) < 2:
        return _interval(correct, z)
    parts = [_interval(correct[groups == g], z) for g in (False, True)]
    acc = sum(p[0] for p in parts) / 2
    half = math.sqrt(sum(((p[2] - p[1]) / 2) ** 2 for p in parts)) / 2
    return acc, max(0.0, acc - half), min(100.0, acc + half)


def _chance(items: Sequence[Item], balanced: bool) -> float:
    inv = np.array([1 / len(it.options) for it in items])
    if not balanced:
        return float(100 * inv.mean())
    normal = np.array([it.is_normal for it in items])
    return float(100 * np.mean([inv[normal == g].mean() for g in (False, True) if (normal == g).any()]))


def _verdict(best: RuleResult, z_family: float, correct: np.ndarray, groups: np.ndarray | None) -> Verdict:
    """Leak: more than MARGIN points above chance, and significantly so (Bonferroni over the rules)."""
    _, low, _ = _score(correct, groups, z_family)
    above = low > best.chance
    if best.accuracy - best.chance > MARGIN:
        return "leak" if above else "inconclusive"
    return "slight edge" if above else "fair"


def _task_results(task: str, items: list[Item], seed: int) -> tuple[list[RuleResult], TaskVerdict]:
    from scipy import stats  # imported here: a run's report reads a saved check without it

    info = task_registry.resolve(task)
    balanced = info is not None and info.scoring == "balanced"
    groups = np.array([it.is_normal for it in items]) if balanced else None
    chance = _chance(items, balanced)
    halves = [[it for it in items if _half(it, seed) == h] for h in (0, 1)]
    results, correct_by_rule = [], {}
    for rule in RULES:
        chosen: dict[int, str] = {}
        for h in (0, 1):
            test = halves[h]
            for it, letter in zip(test, rule.choose(halves[1 - h], test), strict=True):
                chosen[id(it)] = letter
        correct = np.array([chosen[id(it)] == it.answer for it in items])
        acc, low, high = _score(correct, groups, Z95)
        counted = not (rule.knows_category and task_registry.has_role(task, CATEGORY_IS_ANSWER))
        results.append(RuleResult(task=task, rule=rule.name, knows_category=rule.knows_category, counted=counted,
                                  questions=len(items), accuracy=acc, ci_low=low, ci_high=high, chance=chance))
        correct_by_rule[rule.name] = correct
    best = max((r for r in results if r.counted), key=lambda r: r.accuracy)
    z_family = float(stats.norm.ppf(1 - 0.025 / sum(r.counted for r in results)))
    verdict = _verdict(best, z_family, correct_by_rule[best.rule], groups)
    return results, TaskVerdict(task=task, questions=len(items), chance=chance, best_rule=best.rule,
                                best_accuracy=best.accuracy, ci_low=best.ci_low, ci_high=best.ci_high, verdict=verdict)


def _letters(items: Sequence[Item]) -> list[LetterBalance]:
    from scipy import stats  # imported here: a run's report reads a saved check without it

    out = []
    for n in sorted({len(it.options) for it in items}):
        group = [it for it in items if len(it.options) == n]
        for order in ("file", "shuffled"):
            seen = Counter(it.file_answer if order == "file" else it.answer for it in group)
            letters = sorted(set(group[0].options) | set(seen))
            counts = {k: seen.get(k, 0) for k in letters}
            observed = np.array(list(counts.values()), dtype=float)
            p = float(stats.chisquare(observed).pvalue) if len(observed) > 1 and observed.sum() else 1.0
            out.append(LetterBalance(options=n, order=order, counts=counts, p_value=p,
                                     top_share=float(100 * observed.max() / observed.sum())))
    return out


def _counts(items: Sequence[Item]) -> list[CountRow]:
    tally: Counter[tuple[str, str, str]] = Counter((it.dataset, it.category, it.task) for it in items)
    return [CountRow(dataset=d, category=c, task=t, questions=n) for (d, c, t), n in tally.items()]


def _task_order(items: Sequence[Item]) -> list[str]:
    return task_registry.in_order(it.task for it in items)


def check(json_paths: Sequence[Path], seed: int = 0) -> DataCheck:
    """Run every blind rule on the questions of one or several (pooled) mmad.json files."""
    items: list[Item] = []
    skipped = 0
    for source, path in enumerate(json_paths):
        got, bad = _items(source, Path(path), seed)
        items += got
        skipped += bad
    if not items:
        raise InputError(f"{', '.join(str(p) for p in json_paths)}: no questions to check")
    by_task: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_task[it.task].append(it)
    rules, verdicts = [], []
    for task in _task_order(items):
        task_rules, verdict = _task_results(task, by_task[task], seed)
        rules += task_rules
        verdicts.append(verdict)
    return DataCheck(sources=[str(Path(p).resolve()) for p in json_paths], seed=seed,
                     images=len({(it.source, it.image) for it in items}), questions=len(items),
                     skipped_records=skipped, margin=MARGIN, counts=_counts(items), letters=_letters(items),
                     rules=rules, verdicts=verdicts,
                     blind_average=float(np.mean([v.best_accuracy for v in verdicts])),
                     chance_average=float(np.mean([v.chance for v in verdicts])))


# ------------------------------------------------------------------------------------------ output

def rules_frame(result: DataCheck) -> pd.DataFrame:
    """The rules table (one row per type and rule), as written to data_check.csv."""
    df = pd.DataFrame([r.model_dump() for r in result.rules])
    best = {(v.task, v.best_rule) for v in result.verdicts}
    df["best"] = [(t, r) in best for t, r in zip(df["task"], df["rule"], strict=True)]
    df["verdict"] = df["task"].map({v.task: v.verdict for v in result.verdicts})
    return df


def write_data_check(result: DataCheck, out_dir: Path) -> dict[str, Path]:
    """Write data_check.json (everything) and data_check.csv (the rules table) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / CHECK_JSON, "csv": out_dir / CHECK_CSV}
    paths["json"].write_text(json.dumps(json_safe(result.model_dump()), indent=1) + "\n", encoding="utf-8")
    write_csv(rules_frame(result).round(2), paths["csv"], index=False)
    return paths


def load_data_check(folder: Path | str) -> DataCheck | None:
    """The check written beside a benchmark (``folder`` or a file in it), or None when there is none.

    A file that is there but unreadable raises :class:`InputError` naming it.
    """
    path = Path(folder)
    path = (path if path.is_dir() else path.parent) / CHECK_JSON
    if not path.is_file():
        return None
    try:
        return DataCheck.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise InputError(f"{path}: not a data check ({exc.errors()[0]['msg']})") from None


def summary(result: DataCheck) -> str:
    """A readable account: sizes, letter balance, and per type chance, the best blind rule and a verdict."""
    lines = [f"{result.questions} questions on {result.images} images"
             + (f" ({result.skipped_records} malformed record(s) skipped)" if result.skipped_records else "")]
    per_dataset: dict[str, Counter[str]] = defaultdict(Counter)
    categories: dict[str, set[str]] = defaultdict(set)
    for row in result.counts:
        per_dataset[row.dataset][row.task] += row.questions
        categories[row.dataset].add(row.category)
    for dataset, per_task in per_dataset.items():
        lines.append(f"  {dataset} ({len(categories[dataset])} categories): "
                     + ", ".join(f"{t} {n}" for t, n in per_task.items()))
    lines.append("")
    lines.append("answer letters (chi-square p of uniform; most common letter's share):")
    for lb in result.letters:
        lines.append(f"  {lb.options} options, {lb.order:<8}: p={lb.p_value:.3f}, top {lb.top_share:.0f} %  "
                     + " ".join(f"{k}:{v}" for k, v in lb.counts.items()))
    lines.append("")
    lines.append(f"blind rules per type (accuracy %, 95 % CI; a leak is more than {result.margin:.0f} points "
                 "above chance):")
    width = max(len(v.task) for v in result.verdicts)
    for v in result.verdicts:
        lines.append(f"  {v.task:<{width}}  chance {v.chance:5.1f}  best {v.best_accuracy:5.1f} "
                     f"[{v.ci_low:5.1f}, {v.ci_high:5.1f}] {v.best_rule:<44}  {v.verdict}")
    lines.append(f"  {'Average':<{width}}  chance {result.chance_average:5.1f}  best {result.blind_average:5.1f}")
    leaks = [v.task for v in result.verdicts if v.verdict == "leak"]
    lines.append("")
    lines.append(f"verdict: {'LEAKS in ' + ', '.join(leaks) if leaks else 'no type answerable without the image'}")
    return "\n".join(lines)
