"""Human baselines without a browser: the stimuli are the models', the answers a run, agreement by hand, access.

The page itself is tested in a real browser in test_human_page.py.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from mmeval.cli import main
from mmeval.data import load_benchmark, resolve
from mmeval.data.subset import draw
from mmeval.errors import InputError
from mmeval.human.agreement import ALL, agreement
from mmeval.human.answers import AnnotatorRun, Rejected, Timing
from mmeval.human.panel import majority
from mmeval.human.results import write_results
from mmeval.human.server import Panel, bind, create_app, open_panel
from mmeval.human.session import HumanSession, parse_annotators, settle
from mmeval.human.stimuli import build, public_item
from mmeval.predictions import Prediction, read_predictions
from mmeval.report.analysis import load_run
from mmeval.run.prepare import prepare
from mmeval.run.runner import asked, load


@pytest.fixture(scope="module")
def panel_dir(synthetic_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HumanSession]:
    """A panel folder on a 2-per-type sample of the bundled benchmark (28 questions), nobody served yet."""
    json_path, root = resolve(str(synthetic_demo))
    sample = draw(load_benchmark(json_path, root, shots=1).questions, 2, seed=5, source=str(json_path))
    folder = tmp_path_factory.mktemp("panel")
    wanted = HumanSession(data=str(synthetic_demo / "mmad.json"), shots=1, seed=5, subset=sample.digest, practice=2,
                          annotators=["alice", "bob"])
    return folder, settle(folder, wanted, sample)


def test_people_get_the_requests_a_model_gets_detection_first(panel_dir: tuple[Path, HumanSession]) -> None:
    folder, session = panel_dir
    config = session.run_config("alice", folder)
    stimuli = build(config, session.practice)
    model = prepare(asked(config.model_copy(update={"model": "random"}), load(config)), config)
    assert {i.id for i in stimuli.items} == {p.request.id for p in model} and len(stimuli.items) == 28
    by_id = {p.request.id: p for p in model}
    for item in stimuli.items:  # the same rendered message, option order and images, whoever answers
        assert item.prepared.request == by_id[item.id].request and item.prepared.digest == by_id[item.id].digest
    blocks = [i.block for i in stimuli.items]
    assert blocks == sorted(blocks) and blocks.count("detection") == 4  # detection first: 2 datasets x 2
    assert all((i.block == "detection") == (i.prepared.question.task == "Anomaly Detection") for i in stimuli.items)
    sample = {i.id for i in stimuli.items}
    assert len(stimuli.practice) == 2 and not sample & {p.id for p in stimuli.practice}


def test_what_reaches_the_browser_names_no_answer_and_no_path(panel_dir: tuple[Path, HumanSession]) -> None:
    folder, session = panel_dir
    stimuli = build(session.run_config("alice", folder), 0)
    for item in stimuli.items:
        shown = public_item(item, "/a/x/image/0/{k}")
        assert set(shown) == {"n", "block", "task", "question", "options", "yes_no", "images"}
        text = json.dumps(shown)
        assert item.prepared.question.image not in text and item.id not in text and "good" not in text.lower()
        assert [img["url"] for img in shown["images"]] == [f"/a/x/image/0/{k}" for k in range(len(item.images))]


def _pred(qid: str, task: str, choice: str | None) -> Prediction:
    return Prediction(id=qid, image=qid, dataset="d", category="c", type=task, task=task, is_normal=False,
                      question="q", options={"A": "a", "B": "b"}, answer="A", response=choice or "unsure",
                      choice=choice, model="human:x", config="c")


def test_agreement_equals_a_hand_computed_fixture() -> None:
    # three annotators, five questions; r3 was unsure of the fifth
    table = {"r1": "AABAA", "r2": "AABBA", "r3": "ABBB-"}
    answers = {name: [_pred(f"q{i}", "Defect Classification", None if c == "-" else c) for i, c in enumerate(row)]
               for name, row in table.items()}
    record = agreement(answers)
    whole = next(t for t in record.tasks if t.task == ALL)
    assert (whole.questions, whole.complete) == (5, 4)
    # Fleiss on the 4 complete questions: P_i = 1, 1/3, 1, 1/3 -> P = 2/3; p_A = p_B = 1/2 -> P_e = 1/2
    assert whole.fleiss_kappa == pytest.approx(float((Fraction(2, 3) - Fraction(1, 2)) / (1 - Fraction(1, 2))))
    # Krippendorff (nominal): coincidences o_AA = 6, o_BB = 4, o_AB = o_BA = 2; n_A = 8, n_B = 6, n = 14
    d_o, d_e = Fraction(4, 14), Fraction(2 * 8 * 6, 14 * 13)
    assert whole.krippendorff_alpha == pytest.approx(float(1 - d_o / d_e))  # 11/24
    kappas = {(p.a, p.b): (p.questions, p.cohen_kappa) for p in record.pairs if p.task == ALL}
    # r1-r2 on 5: p_o = 4/5, p_e = 4/5*3/5 + 1/5*2/5 = 14/25; r1-r3 and r2-r3 on the 4 both answered
    assert kappas[("r1", "r2")] == (5, pytest.approx(float((Fraction(4, 5) - Fraction(14, 25)) / Fraction(11, 25))))
    assert kappas[("r1", "r3")] == (4, pytest.approx(0.2))
    assert kappas[("r2", "r3")] == (4, pytest.approx(0.5))
    single = agreement({"r1": answers["r1"]})
    assert all(t.fleiss_kappa is None and t.krippendorff_alpha is None and t.note for t in single.tasks)


def test_majority_vote_is_seeded_on_ties() -> None:
    assert majority(["A", "B", "A", None], 0, "q") == "A"
    assert majority([None, None], 0, "q") is None
    ties = {majority(["A", "B"], 0, f"q{i}") for i in range(40)}
    assert ties == {"A", "B"}  # both win some ties ...
    assert [majority(["A", "B"], 0, f"q{i}") for i in range(40)] == [majority(["B", "A"], 0, f"q{i}")
                                                                     for i in range(40)]  # ... the same ones


def test_an_annotator_run_keeps_one_line_per_question(panel_dir: tuple[Path, HumanSession]) -> None:
    folder, session = panel_dir
    stimuli = build(session.run_config("bob", folder), 0)
    run = AnnotatorRun(folder, session, "bob", stimuli)
    try:
        with pytest.raises(InputError, match="in use"):
            AnnotatorRun(folder, session, "bob", stimuli)  # one writer per directory
        with pytest.raises(Rejected, match="detection block first"):
            run.answer(4, "A", Timing(1000))
        assert run.answer(0, "A", Timing(1500, 200, 100)) == "saved"
        assert run.answer(0, "A", Timing(900)) == "unchanged"
        assert run.answer(0, "B", Timing(800)) == "replaced"
        assert run.answer(1, None, Timing(700)) == "saved"  # unsure
        with pytest.raises(Rejected, match="not an option"):
            run.answer(2, "Q", Timing(1))
        for n in (2, 3):
            run.answer(n, "A", Timing(1))
        assert not run.detection_open()
        with pytest.raises(Rejected, match="closed"):
            run.answer(0, "A", Timing(1))
    finally:
        run.close()
    preds = read_predictions(run.dir / "predictions.jsonl")
    assert [p.choice for p in preds] == ["B", None, "A", "A"] and preds[1].note == "unsure"
    assert {p.model for p in preds} == {"human:bob"} and len({p.id for p in preds}) == 4
    timings = [json.loads(line) for line in (run.dir / "timings.jsonl").read_text().splitlines()]
    assert timings[0] == {"id": preds[0].id, "seconds": 1.2, "batch_size": 1, "shown_seconds": 1.5,
                          "hidden_seconds": 0.2, "idle_seconds": 0.1}
    # a torn last line (a killed server) is cut off when the run is opened again; nothing else is lost
    with open(run.dir / "predictions.jsonl", "a") as fh:
        fh.write('{"id": "torn')
    again = AnnotatorRun(folder, session, "bob", stimuli)
    try:
        assert again.answered() == 4 and again.next_open() == 4
    finally:
        again.close()
    assert len(read_predictions(run.dir / "predictions.jsonl")) == 4
    rd = load_run(run.dir)  # an ordinary run directory
    assert rd.model == "human:bob" and rd.config.subset == session.subset
    # an answer to a question whose record has changed since is not kept: the question is asked again
    path = run.dir / "predictions.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(f'"question_digest":"{preds[2].question_digest}"', '"question_digest":"0"')
    path.write_text("\n".join(lines) + "\n")
    again = AnnotatorRun(folder, session, "bob", stimuli)
    try:
        assert again.answered() == 3 and again.next_open() == 2 and again.detection_open()
        again.answer(2, "A", Timing(1))
    finally:
        again.close()
    assert [p.choice for p in read_predictions(path)] == ["B", None, "A", "A"]


def test_a_panel_folder_keeps_its_stimuli(panel_dir: tuple[Path, HumanSession], synthetic_demo: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    folder, session = panel_dir
    assert main(["human", "serve", "--data", str(synthetic_demo), "--annotators", "alice", "--out", str(folder),
                 "--seed", "6", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "other questions" in err and "seed: 5 -> 6" in err
    assert main(["human", "serve", "--data", str(synthetic_demo), "--annotators", "al ice", "--out",
                 str(folder)]) == 2
    assert "not a usable name" in capsys.readouterr().err
    assert main(["human", "serve", "--data", str(synthetic_demo), "--annotators", "x",
                 "--out", str(folder.parent / "new")]) == 2
    assert "--per-type" in capsys.readouterr().err
    with pytest.raises(InputError, match="reserved"):
        parse_annotators("alice,panel")


@contextlib.contextmanager
def served(panel: Panel) -> Iterator[str]:
    """The panel's app on a free local port, in a thread of this process; yields its base URL."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(panel), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as res:
            return res.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _raw_status(base: str, path: str) -> int:
    """GET a path exactly as written (urllib would resolve the dots first)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path)
    return conn.getresponse().status


def test_tokens_names_and_paths(panel_dir: tuple[Path, HumanSession]) -> None:
    folder, session = panel_dir
    panel = open_panel(folder, session, ["alice"], host="0.0.0.0")
    assert panel.need_token and set(panel.tokens) == {"alice"}
    token = panel.tokens["alice"]
    assert json.loads((folder / ".tokens.json").read_text())["alice"] == token
    assert (folder / ".tokens.json").stat().st_mode & 0o077 == 0  # the owner's only
    try:
        with served(panel) as base:
            assert _status(f"{base}/a/alice") == 403  # beyond this machine a URL needs its token
            assert _status(f"{base}/a/alice?t=wrong") == 403
            assert _status(f"{base}/a/alice/state?t={token}") == 200
            assert _status(f"{base}/a/alice/image/0/0?t={token}") == 200
            assert _status(f"{base}/a/mallory?t={token}") == 403  # not on the panel
            assert _status(f"{base}/a/alice/image/0/99?t={token}") == 404
            for path in ("/image/../x", "/a/alice/image/../x", f"/a/alice/image/0/../../../mmad.json?t={token}",
                         "/static/../human/server.py"):
                assert _raw_status(base, path) == 404, path
    finally:
        for run in panel.runs.values():
            run.close()
    local = open_panel(folder, session, ["alice"], host="127.0.0.1")
    try:
        assert not local.need_token and local.tokens["alice"] == token  # the same URL after a restart
    finally:
        for run in local.runs.values():
            run.close()


def test_agreement_command_writes_the_majority_as_a_run(panel_dir: tuple[Path, HumanSession],
                                                        capsys: pytest.CaptureFixture) -> None:
    folder, session = panel_dir
    stimuli = build(session.run_config("alice", folder), 0)
    given: dict[str, list[str | None]] = {}
    for name, letters in {"alice": "ABAB", "bob": "BAAA"}.items():
        run = AnnotatorRun(folder, session, name, stimuli)
        try:
            if run.detection_open():  # bob may have answered in an earlier test: his answers stand
                for n, letter in enumerate(letters):
                    run.answer(n, letter, Timing(1000 * (n + 1)))
            given[name] = [run.answers[i.id].choice for i in stimuli.items[:4]]
        finally:
            run.close()
    assert main(["human", "agreement", str(folder)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str((folder / "agreement.json").resolve())
    assert "Cohen's kappa" in captured.err
    record = json.loads((folder / "agreement.json").read_text())
    assert record["version"] == 1 and record["annotators"] == ["alice", "bob"]
    pair = next(p for p in record["pairs"] if p["task"] == ALL)
    both = [(a, b) for a, b in zip(given["alice"], given["bob"], strict=True) if a and b]
    assert pair["questions"] == len(both) and pair["agreement"] == sum(a == b for a, b in both) / len(both)
    panel = load_run(folder / "human-panel")
    assert panel.model == "human:panel" and len(panel.preds) == 4
    ids = [i.id for i in stimuli.items[:4]]
    assert {p.id: p.choice for p in panel.preds} == {
        qid: majority([given["alice"][n], given["bob"][n]], 5, qid) for n, qid in enumerate(ids)}
    assert (folder / "human-panel" / "report.html").is_file() and (folder / "human-alice" / "report.html").is_file()
    results, _ = write_results(folder)  # again: the same panel, nothing added
    assert len(read_predictions(folder / "human-panel" / "predictions.jsonl")) == 4
    assert results.agreement.model_dump(mode="json") == record
