"""The question writer (``--writer openai:MODEL``) against the local OpenAI-compatible test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from byod_trees import mvtec_tree
from fake_openai_server import FakeOpenAIServer

from mmeval.builders import BuildOptions, build, scan
from mmeval.builders.writer import Job, Rejected, check_reply, prompt
from mmeval.cli import main

pytest.importorskip("openai")

SECRET = "sk-test-0123456789abcdefSECRET"


@pytest.fixture(scope="module")
def parts(synthetic_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One category (the nut) in the MVTec layout: 20 images, 12 of them defective."""
    root = mvtec_tree(synthetic_demo, tmp_path_factory.mktemp("writer") / "parts")
    for cat in ("pcb", "washer"):
        import shutil

        shutil.rmtree(root / cat)
    return root


def test_rejected_replies_are_asked_again_and_hopeless_ones_reported(parts: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRITER_KEY", SECRET)
    monkeypatch.setenv("MMEVAL_HOME", str(tmp_path / "home"))
    with FakeOpenAIServer(writer_faults=("malformed", "two-correct"), writer_hopeless="(crack)",
                          api_key=SECRET) as srv:
        options = BuildOptions(writer="openai:fake-writer", writer_args=[f"base_url={srv.base_url}",
                                                                         "api_key_env=WRITER_KEY"])
        result = build(scan("mvtec", parts), tmp_path / "out", options)
        # 32 questions: 26 pass on the third attempt, the 6 about cracks never do (3 attempts each)
        assert dict(srv.writer_kinds) == {"malformed": 26, "two-correct": 26 + 6 * 3, "ok": 26}
        # a rebuild replays every exchange from the cache: the server is not asked again
        before = srv.requests
        again = build(scan("mvtec", parts), tmp_path / "again", options)
        assert srv.requests == before and again.writer is not None and again.writer["cache_hits"] == 96
    data = json.loads((tmp_path / "out" / "mmad.json").read_text())
    assert (tmp_path / "out" / "mmad.json").read_bytes() == (tmp_path / "again" / "mmad.json").read_bytes()
    counts = result.counts
    # 8 normal images: one Object Analysis each; 12 defective: Description and Analysis, except the 3 cracks
    assert counts["Object Analysis"] == 8 and counts["Defect Description"] == 9 and counts["Defect Analysis"] == 9
    failed = [s for s in result.skipped if s.reason.startswith("the writer failed")]
    assert len(failed) == 6 and all("/crack/" in s.item for s in failed)
    assert "rejected 3 time(s); last: exactly one option must be correct (the answer names 2: " in failed[0].reason
    assert result.writer is not None
    assert result.writer["rejected_replies"] == {"exactly one option must be correct": 44,
                                                 "the reply is not JSON": 26}
    written = [q for rec in data.values() for q in rec["conversation"] if q["origin"]["method"] == "writer"]
    assert len(written) == 26
    for q in written:
        assert q["origin"]["model"] == "openai:fake-writer" and q["origin"]["attempts"] == 3
        assert len(q["origin"]["prompt_digest"]) == 16 and len(set(q["Options"].values())) == 4
    oa = next(q for q in written if q["type"] == "Object Analysis")
    assert oa["Question"] == "How many round openings does the part have?"
    # the options were reshuffled with the build's seed: answer letters are not the server's hash letters only
    assert len({q["Answer"] for q in written}) > 1
    # the key reached no file
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()
            assert SECRET[:12].encode() not in path.read_bytes()


def test_the_writer_sees_the_image_and_the_mask(parts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMEVAL_HOME", str(tmp_path / "home"))
    with FakeOpenAIServer() as srv:
        build(scan("mvtec", parts), tmp_path / "out",
              BuildOptions(writer="openai:fake-writer", writer_args=[f"base_url={srv.base_url}", "no_cache=true"]))
        assert srv.images_seen == 8 * 1 + 24 * 2  # normal: the image; defective: the image and its mask
        texts = [part["text"] for body in srv.bodies for part in body["messages"][0]["content"]
                 if part["type"] == "text"]
    assert any("second image is the defect's mask" in t for t in texts)
    assert any("normal, defect-free nut" in t for t in texts)


def test_the_cli_prints_what_the_writer_did(parts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MMEVAL_HOME", str(tmp_path / "home"))
    with FakeOpenAIServer(writer_faults=("duplicate",)) as srv:
        args = ["build", "mvtec", str(parts), "--out", str(tmp_path / "out"), "--writer", "openai:fake-writer",
                "-W", f"base_url={srv.base_url}", "--writer-attempts", "2"]
        assert main(args) == 0
    err = capsys.readouterr().err
    assert "writer openai:fake-writer: 64 request(s), 0 answered from the cache" in err
    assert "'two options say the same thing (two correct or duplicate options)': 32" in err and "verdict:" in err
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "written by `openai:fake-writer`" in readme and "up to 2 times" in readme


JOB = Job("k#Defect Description", "k", "Defect Description", Path("x.png"), Path("m.png"), "nut", "chip")


def _reply(options: object, answer: object = "A", question: str = "Q?") -> str:
    return json.dumps({"question": question, "options": options, "answer": answer})


GOOD = {"A": "A small notch in the rim.", "B": "A long thin scratch.", "C": "A dark oily smear.",
        "D": "A bent thread near the top."}


def test_check_reply_accepts_a_good_question() -> None:
    question, correct, wrong = check_reply("Here it is:\n```json\n" + _reply(GOOD, "C") + "\n```", JOB)
    assert question.endswith("What is the appearance of the defect?") and correct == "A dark oily smear."
    assert wrong == [GOOD["A"], GOOD["B"], GOOD["D"]]
    assert check_reply(_reply(list(GOOD.values()), "b"), JOB)[1] == GOOD["B"]


@pytest.mark.parametrize(("reply", "reason"), [
    ('{"question": "Q", "options": {"A": "x"', "not JSON"),
    ("Sure, here is a question about the nut.", "not JSON"),
    ('{"question": "Q?", "options": ' + "[" * 5000 + "]" * 5000 + "}", "not JSON \\(JSON nested too deeply"),
    (_reply({"A": "x", "B": "y", "C": "z"}), "exactly four options"),
    (_reply(GOOD, ["A", "C"]), "exactly one option must be correct \\(the answer names 2: A, C\\)"),
    (_reply(GOOD, "A, C"), "exactly one option must be correct"),
    (_reply(GOOD, "E"), "not one of the options A-D \\(it is 'E'\\)"),
    (_reply({**GOOD, "B": "a small NOTCH in the rim"}), "say the same thing .*\\(A and B\\)"),
    (_reply({**GOOD, "D": "All of the above."}), "all/none of the above"),
    (_reply({**GOOD, "A": "A small notch in the rim, deep and jagged, running around most of the nut's edge."}),
     "much longer"),
    (_reply({**GOOD, "A": "Notch.", "B": "A long thin scratch across it.", "C": "A dark oily smear on top.",
             "D": "A bent thread near the top."}), "much shorter"),
    (_reply({**GOOD, "A": "The appearance of the defect in the object."}), "repeats the question's words"),
])
def test_check_reply_rejects(reply: str, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        check_reply(reply, JOB)


def test_object_analysis_needs_a_question() -> None:
    job = Job("k#Object Analysis", "k", "Object Analysis", Path("x.png"), None, "nut")
    with pytest.raises(Rejected, match="must be a question"):
        check_reply(_reply(GOOD, "A", question="Describe the nut."), job)
    assert check_reply(_reply(GOOD, "A", question="How many sides has it?"), job)[0] == "How many sides has it?"
    text = prompt(job, 2, 3, "the reply is not JSON")
    assert "Attempt 2 of 3. Your previous reply was rejected: the reply is not JSON." in text
