"""The README every build writes into its output: what the benchmark holds, how it was made, what was left out."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mmeval.builders import questions as rules
from mmeval.builders.options import ORDER, REPORT, BuildOptions, BuildResult
from mmeval.builders.sources import Source

CHECK_HEADING = "## Validity check"
SHOWN_SKIPS = 25
LAYOUT_NAMES = {"mvtec": "the MVTec-AD layout", "visa": "VisA's split-file layout", "folders": "good/ and bad/ "
                "folders per product"}


def _how(qtype: str, options: BuildOptions) -> str:
    writer = f"written by `{options.writer}`, shown the image" if options.writer else ""
    knowledge = f"from the knowledge file `{Path(options.knowledge).name}`" if options.knowledge else ""
    return {
        "Anomaly Detection": "from the labels: Yes. for a defective image, No. for a normal one",
        "Defect Classification": "the defect's folder or label name made readable (in categories with at least two "
                                 "defect types); distractors: the category's other defects, then common defect names "
                                 "sharing no word with them",
        "Defect Localization": f"where the mask lies on the 3x3 grid: one region holding at least "
                               f"{rules.DOMINANT:.0%} of it, or two holding {rules.PAIR:.0%} (then every option "
                               "names two regions); wrong options never name a region the defect touches",
        "Object Classification": "the category's name; distractors: the other categories, then common product names",
        "Defect Description": (writer + " and its mask") if writer else knowledge + (" (the first sentence of each "
                              "defect's Description)" if knowledge else "") or "not asked (needs --knowledge or "
                              "--writer)",
        "Defect Analysis": (writer + " and its mask") if writer else knowledge + (" (the defects' Effect lines)"
                           if knowledge else "") or "not asked (needs --knowledge with Effect lines, or --writer)",
        "Object Analysis": writer or "not asked (needs --writer)",
    }[qtype]


def readme(source: Source, options: BuildOptions, result: BuildResult) -> str:
    lines = [f"# {source.dataset}: an MMAD-format benchmark built from `{source.root.name}`", "",
             f"Built by `mmeval build {source.layout}` from `{source.root}` ({LAYOUT_NAMES[source.layout]}) with "
             f"seed {options.seed}: {result.images:,} images asked about, {result.questions:,} questions. The same "
             "source, options and seed build byte-identical files.", "",
             "Evaluate a model on it:", "", "```bash", "mmeval run --model MODEL --data path/to/this/folder --shots 1",
             "```", "", "## Questions", "", "| type | questions | how they were made |", "|---|---|---|"]
    lines += [f"| {t} | {result.counts.get(t, 0):,} | {_how(t, options)} |" for t in ORDER]
    lines += ["", "Every question records how it was made in its `origin` field (rule, knowledge file, or writer "
              "with the model, the digest of its prompt and the attempts it took). The correct option's position is "
              "drawn for each question on its own.", ""]
    if options.writer:
        lines += [f"Written questions were validated (exactly one correct option, four distinct options, an answer "
                  f"not guessable from length or wording) and asked again with the reason when rejected, up to "
                  f"{options.writer_attempts} times; replies are cached, so rebuilding costs nothing.", ""]
    lines += ["## Categories", "", "| category | templates | normal images | defective images | defect types |",
              "|---|---|---|---|---|"]
    for cat in source.categories:
        normal = sum(q.defect is None for q in cat.queries)
        kinds = sorted({lb for q in cat.queries for lb in q.labels})
        lines.append(f"| {cat.name} | {len(cat.templates)} | {normal} | {len(cat.queries) - normal} | "
                     f"{', '.join(kinds) or '(not named)'} |")
    lines += ["", f"Each record lists {options.template_count} normal templates (fewer when the category has fewer): "
              "`similar_templates`, the category's templates ranked by likeness to the image (grey 32x32 "
              "thumbnails, mean squared difference), and `random_templates`, a seeded draw.", "",
              "## Left out", ""]
    if result.skipped:
        tally = Counter((s.what, s.reason) for s in result.skipped)
        lines += [f"{len(result.skipped)} item(s) were left out; every one is listed in `{REPORT}`.", "",
                  "| what | why | how many |", "|---|---|---|"]
        lines += [f"| {what} | {why} | {n} |" for (what, why), n in sorted(tally.items(), key=lambda x: (-x[1], x[0]))
                  [:SHOWN_SKIPS]]
    else:
        lines.append("Nothing: every image and every question the labels allow is in the benchmark.")
    lines += ["", "## Files", "",
              "- `mmad.json`: the questions, keyed by image path (MMAD's format)",
              "- `DATASET/CATEGORY/train/good/`, `test/...`, `ground_truth/...`: templates, images, masks (0/255 PNG)",
              f"- `{REPORT}`: the options of this build, counts, and everything left out",
              "- `data_check.json`, `data_check.csv`: the validity check below"]
    if options.knowledge:
        lines.append("- `domain_knowledge.json`: the knowledge file's entries for these categories (for the "
                     "knowledge boosts)")
    lines += ["", "The images keep the licence of their source.", ""]
    return "\n".join(lines)


def add_check(readme_path: Path, summary: str) -> None:
    """Append (or replace) the validity check's summary at the end of a build's README."""
    text = readme_path.read_text(encoding="utf-8")
    text = text.split("\n" + CHECK_HEADING + "\n", 1)[0].rstrip("\n") + "\n"
    text += (f"\n{CHECK_HEADING}\n\nCan the questions be answered without looking at the images? `mmeval data check` "
             "tried rules that never open an image (the longest option, the option most often right elsewhere, a "
             "text-only classifier ...); a *leak* means a model could score on that type without looking.\n\n```\n"
             + summary.rstrip("\n") + "\n```\n")
    readme_path.write_text(text, encoding="utf-8")
