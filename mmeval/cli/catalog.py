"""``mmeval models [show FAMILY]``, ``mmeval tasks``, ``mmeval boosts`` and ``mmeval experts``: what exists."""

from __future__ import annotations

import argparse
from typing import Any

from mmeval import optionspec


def add_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="list model families, or show one family's options",
                            description="List the model families --model accepts; 'mmeval models show FAMILY' lists "
                                        "that family's options (--model-arg KEY=VALUE) with types, defaults and help.")
    models.add_argument("action", nargs="?", choices=["show"], help="show one family's options")
    models.add_argument("family", nargs="?", help="the family to show")
    models.set_defaults(func=cmd_models)
    tasks = sub.add_parser("tasks", help="list the question types", description="List the task definitions in tasks/.")
    tasks.set_defaults(func=cmd_tasks)
    boosts = sub.add_parser("boosts", help="list boosts and their options",
                            description="List the boosts --boost accepts, with their options (--boost-arg). With "
                                        "--notations PNG: draw one image of the data in the five notations the "
                                        "agent boost can show a model (with the ground-truth mask as the map).")
    boosts.add_argument("--notations", metavar="PNG", help="write the five notations of one image to this file")
    boosts.add_argument("--data", default="synthetic", help="benchmark to take the image from (default: synthetic)")
    boosts.add_argument("--image", help="the image's key in the data (default: the first defective image with a mask)")
    boosts.set_defaults(func=cmd_boosts)
    experts = sub.add_parser("experts", help="list anomaly detectors (experts) and their options",
                             description="List the anomaly detectors that the expert model family and boosts use.")
    experts.set_defaults(func=cmd_experts)


def cmd_models(args: argparse.Namespace) -> int:
    from mmeval.errors import InputError
    from mmeval.model_adapters import FAMILIES, get_family

    if args.action is None:
        for name, fam in FAMILIES.items():
            print(f"{name + (':TARGET' if fam.needs_target else ''):<20} {fam.summary}")
        print("\n'mmeval models show FAMILY' lists a family's options.")
        return 0
    if not args.family:
        raise InputError("mmeval models show: name a family, e.g. 'mmeval models show hf'")
    family = get_family(args.family.partition(":")[0])
    cls = family.load()
    print(f"{family.name}: {family.summary}")
    print(f"answer modes: {', '.join(cls.answer_modes)}; default batch size: {cls.default_batch_size}")
    docs = cls.option_docs()
    print("options (--model-arg KEY=VALUE):" if docs else "options: none")
    if docs:
        print(optionspec.format_docs(docs))
    details = cls.describe()
    if details:
        print(details)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from mmeval import tasks

    for t in tasks.all_tasks():
        print(f"{t.name:<24} asked about {t.asked_about:<9} role {t.role:<17} scored by {t.scoring:<8} "
              f"labels: {', '.join(t.aliases)}")
    return 0


def cmd_boosts(args: argparse.Namespace) -> int:
    from mmeval.boosts import BOOSTS, boost_class

    if args.notations:
        return _draw_notations(args)

    for name in BOOSTS:
        cls = boost_class(name)
        print(f"{name:<12} {cls.summary}")
        if cls.templates:
            print(f"    worded by: {', '.join(f'prompts/{t}.j2' for t in cls.templates)}")
        docs = cls.option_docs()
        if docs:
            print(optionspec.format_docs(docs, indent="    "))
    return 0


def cmd_experts(args: argparse.Namespace) -> int:
    from mmeval.experts import EXPERTS, expert_class

    for name in EXPERTS:
        cls = expert_class(name)
        print(f"{name:<12} {cls.summary}")
        docs = optionspec.describe(cls.Options)
        if docs:
            print(optionspec.format_docs(docs, indent="    "))
    return 0


def _draw_notations(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmeval.boosts.overlays import montage
    from mmeval.data import load_benchmark, resolve
    from mmeval.errors import InputError
    from mmeval.experts.binarise import Binarisation
    from mmeval.experts.mapfile import read_mask

    json_path, root = resolve(args.data)
    bench = load_benchmark(json_path, root)
    with_mask = [q for q in bench.questions if q.mask_path and Path(q.mask_path).is_file()]
    picked = [q for q in with_mask if args.image in (None, q.image)]
    if not picked:
        raise InputError(f"--image {args.image}: no defective image with a mask of that key in {json_path}"
                         if args.image else f"{json_path}: no defective image with a mask to draw")
    q = picked[0]
    assert q.mask_path is not None  # picked only questions with a mask file
    sheet = montage(q.query_path, read_mask(Path(q.mask_path)).astype("float32"), Binarisation(max_boxes=3))
    out = Path(args.notations)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(out.resolve())
    return 0
