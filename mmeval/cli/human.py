"""``mmeval human serve``: inspectors answer the models' questions in a browser; ``mmeval human agreement``: how
far they agree, and their majority vote as one more run. Needs the human extra: ``pip install 'mmeval[human]'``."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

from mmeval.cli import args as flags
from mmeval.errors import InputError

EXTRA = "pip install 'mmeval[human]'"


def add_parser(sub: Any) -> None:
    human = sub.add_parser(
        "human", help="human baselines: inspectors answer the same questions in a browser, scored like a model",
        description="Human baselines on your own questions. 'serve' starts a local web page where each annotator "
                    "answers a fixed sample of the questions, shown exactly as a model gets them; each annotator's "
                    "answers are a run directory (OUT/human-NAME) that 'mmeval report' and 'mmeval compare' read "
                    "like any other. 'agreement' measures how far they agree and writes their majority vote as "
                    "one more run (OUT/human-panel). Needs the human extra: " + EXTRA + ".")
    actions = human.add_subparsers(dest="human_command", required=True, metavar="ACTION")
    srv = actions.add_parser(
        "serve", help="start the annotation page; prints one URL per annotator",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve the annotation page until Ctrl-C. Every Anomaly Detection question comes first (later "
                    "questions give its answer away) and the block is closed once finished. Answers are saved as "
                    "they are given: stop and start the server, reload or close the page at any time, and each "
                    "annotator continues at their first unanswered question. Serving the same --out again may add "
                    "annotators; its data, seed, shots and sample are fixed when it is first served.",
        epilog="Models on the same questions: mmeval run --model M --data DATA --subset OUT/subset.json --seed S "
               "--shots K\nTheir reports then show this panel beside them (found beside the subset file).")
    srv.add_argument("--annotators", required=True, metavar="NAME,NAME",
                     help="who answers (one page each); another name gets 403")
    srv.add_argument("--out", default="reports/human", help="the panel's folder (default: reports/human)")
    srv.add_argument("--data", default="synthetic",
                     help="the benchmark, as 'mmeval run --data' takes it (default: synthetic)")
    srv.add_argument("--image-root", help="as 'mmeval run --image-root'")
    srv.add_argument("--columns", metavar="FIELD=COLUMN,...", help="for tables, as 'mmeval run --columns'")
    srv.add_argument("--per-type", type=flags.count, metavar="N",
                     help="draw a sample of N questions per dataset x question type (as 'mmeval data subset')")
    srv.add_argument("--subset", metavar="SUBSET_JSON", help="or ask the questions of a sample written by "
                                                             "'mmeval data subset' (default: the folder's own)")
    srv.add_argument("--seed", type=flags.seed, default=0,
                     help="seed of the sample and of the option order, as 'mmeval run --seed' (default: 0)")
    srv.add_argument("--shots", type=flags.count_or_zero, default=1,
                     help="defect-free templates shown beside the query, as 'mmeval run --shots' (default: 1)")
    srv.add_argument("--templates", choices=["random", "similar"], default="random",
                     help="which template list, as 'mmeval run --templates' (default: random)")
    srv.add_argument("--practice", type=flags.count_or_zero, default=6, metavar="N",
                     help="practice questions with feedback before the real ones, drawn from outside the sample "
                          "(default: 6; 0 for none)")
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1, this machine only); any other address makes "
                          "every URL carry its annotator's token")
    srv.add_argument("--port", type=flags.port, default=8765, help="port (default: 8765; 0 picks a free one)")
    srv.set_defaults(func=cmd_serve)

    agr = actions.add_parser(
        "agreement", help="how far the annotators agree; writes their majority vote as a run",
        description="Fleiss' kappa and Krippendorff's alpha per question type, Cohen's kappa per pair of annotators "
                    "(statsmodels, krippendorff, scikit-learn). Writes agreement.json, agreement.csv and "
                    "agreement_pairs.csv into DIR, the majority vote as the run DIR/human-panel (model human:panel) "
                    "with its report, and the reports of the annotators not being served.")
    agr.add_argument("dir", metavar="DIR", help="the panel's folder (human serve's --out)")
    agr.set_defaults(func=cmd_agreement)


def _needs_extra() -> None:
    missing = []
    for module in ("fastapi", "uvicorn", "statsmodels", "krippendorff"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise InputError(f"mmeval human needs {', '.join(missing)}: {EXTRA}")


def _sample(args: argparse.Namespace, data: str, image_root: str | None) -> Any:
    """The sample to serve: the --subset file, a fresh draw (--per-type), or the folder's own."""
    from mmeval.data import load_benchmark, resolve
    from mmeval.data.subset import draw
    from mmeval.human.session import sample_of

    if args.subset and args.per_type:
        raise InputError("give --per-type or --subset, not both")
    drawn = None
    if args.per_type is not None:
        json_path, root = resolve(data, image_root)
        bench = load_benchmark(json_path, root, shots=args.shots, templates=args.templates)
        drawn = draw(bench.questions, args.per_type, args.seed, source=str(json_path))
    return sample_of(Path(args.out), args.subset, drawn)


def cmd_serve(args: argparse.Namespace) -> int:
    _needs_extra()
    from mmeval.data.loading import stored_data
    from mmeval.data.tables import parse_columns
    from mmeval.human import server
    from mmeval.human.session import HumanSession, parse_annotators, settle

    names = parse_annotators(args.annotators)
    data, image_root = stored_data(args.data, args.image_root, columns=parse_columns(args.columns))
    folder = Path(args.out)
    sample = _sample(args, data, image_root)
    wanted = HumanSession(data=data, image_root=image_root, shots=args.shots, templates=args.templates,
                          seed=args.seed, subset=sample.digest, practice=args.practice, annotators=names)
    session = settle(folder, wanted, sample)
    try:
        sock = server.bind(args.host, args.port)
    except OSError as exc:
        raise InputError(f"--host {args.host} --port {args.port}: cannot listen there ({exc.strerror or exc})") \
            from None
    panel = server.open_panel(folder, session, names, args.host, on_finished=_report)
    try:
        port = sock.getsockname()[1]
        shown = socket.gethostname() if args.host in ("0.0.0.0", "::") else args.host
        shown = f"[{shown}]" if ":" in shown else shown
        stimuli = panel.stimuli
        print(f"mmeval: {len(stimuli.items)} questions ({stimuli.detection_count} in the detection block), "
              f"sample {session.subset}, {len(stimuli.practice)} practice; answers go to "
              f"{folder.resolve()}/human-NAME; Ctrl-C stops (answers are kept)", file=sys.stderr)
        for name in names:
            token = f"?t={panel.tokens[name]}" if panel.need_token else ""
            print(f"{name}: http://{shown}:{port}/a/{name}{token}", flush=True)
        server.serve(server.create_app(panel), sock)
    except KeyboardInterrupt:
        print("mmeval: stopped; every answer given is saved (serve again to continue)", file=sys.stderr)
    finally:
        server.close_panel(panel)
        sock.close()
    return 0


def _report(run_dir: Path) -> None:
    """An annotator's (or the panel's) report, as 'mmeval report' writes it."""
    from mmeval.report.run_report import write_run_report

    write_run_report(run_dir)


def cmd_agreement(args: argparse.Namespace) -> int:
    _needs_extra()
    from mmeval.human.agreement import text_summary
    from mmeval.human.results import write_results
    from mmeval.report.csvsafe import write_csv
    from mmeval.run.rundir import RunDirLock

    folder = Path(args.dir)
    results, panel = write_results(folder)
    record = results.agreement
    write_csv(record.table(), folder / "agreement.csv", index=False, float_format="%.4f")
    if not record.pair_table().empty:
        write_csv(record.pair_table(), folder / "agreement_pairs.csv", index=False, float_format="%.4f")
    _report(panel)
    busy = []
    for name, run in results.dirs.items():
        lock = RunDirLock(run)
        try:
            lock.acquire()
        except InputError:
            busy.append(name)  # being served: their report is written when they finish
            continue
        try:
            _report(run)
        finally:
            lock.release()
    print(results.describe(), file=sys.stderr)
    print(text_summary(record), file=sys.stderr)
    print(f"majority vote: {panel.resolve()} (report.html there)"
          + (f"; {', '.join(busy)} being served: report when finished" if busy else ""), file=sys.stderr)
    print((folder / "agreement.json").resolve())
    return 0
