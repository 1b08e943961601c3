"""Answer extraction on a corpus of realistic model replies, including the traps MMAD's parser falls into.

MMAD's own parser reads the article in "A defect is visible" as option A and always returns some
option through difflib; ``extract_choice`` must instead return None (invalid) for such replies.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import pytest

from mmeval.answers import LETTERS, MAX_WEAK_WORDS, choose, extract_choice, is_valid_letter
from mmeval.prompting.messages import Response

YN = {"A": "Yes.", "B": "No."}
NY = {"A": "No.", "B": "Yes."}  # same question, options the other way round
LOC4 = {"A": "Top left.", "B": "Center.", "C": "Bottom left.", "D": "Bottom right."}
CLS4 = {"A": "Crack.", "B": "Scratch.", "C": "Contamination.", "D": "Hole."}
CLS5 = {"A": "Crack", "B": "Scratch", "C": "Scratch on the surface", "D": "Missing part", "E": "Contamination"}
OBJ5 = {"A": "Screw.", "B": "Bottle.", "C": "Cable.", "D": "Capsule.", "E": "Hazelnut."}


class Case(NamedTuple):
    id: str
    response: str
    options: dict[str, str]
    expected: str | None


def case(id: str, response: str, options: dict[str, str], expected: str | None) -> Case:
    return Case(id, response, options, expected)


TERSE = [  # LLaVA-1.5 style: the letter only
    case("terse-A", "A", YN, "A"),
    case("terse-B", "B", YN, "B"),
    case("terse-dot", "B.", LOC4, "B"),
    case("terse-lower-b", "b", LOC4, "B"),
    case("terse-lower-a-is-a-letter-when-alone", "a", YN, "A"),
    case("terse-lower-a-dot", "a.", LOC4, "A"),
    case("terse-parens", "(C)", LOC4, "C"),
    case("terse-brackets", "[D]", LOC4, "D"),
    case("terse-bold", "**B**", LOC4, "B"),
    case("terse-whitespace", "  D \n", LOC4, "D"),
    case("terse-5-options-E", "E", OBJ5, "E"),
    case("terse-fullwidth", "\uff23", LOC4, "C"),
    case("terse-close-paren", "B)", CLS4, "B"),
]

LETTER_WITH_TEXT = [  # GPT-4o style: letter and option text
    case("gpt-B-No", "B. No.", YN, "B"),
    case("gpt-A-Yes", "A. Yes.", YN, "A"),
    case("gpt-B-Center", "B. Center.", LOC4, "B"),
    case("gpt-colon", "C: Contamination", CLS4, "C"),
    case("gpt-paren-text", "B) Scratch.", CLS4, "B"),
    case("gpt-letter-space-text", "D Bottom right", LOC4, "D"),
    case("gpt-letter-then-explanation", "E. Hazelnut. The object is a hazelnut with a crack in its shell.", OBJ5, "E"),
    case("gpt-lower-with-text", "c. bottom left", LOC4, "C"),
    case("gpt-A-then-defect-words", "A. Yes, a defect is visible on the left.", YN, "A"),
]

MARKERS = [  # explicit answer markers
    case("answer-colon", "Answer: B", LOC4, "B"),
    case("answer-colon-lower", "answer: b", LOC4, "B"),
    case("answer-no-space", "Answer:B.", LOC4, "B"),
    case("answer-is", "The answer is B", LOC4, "B"),
    case("correct-option-is-paren", "The correct option is (B)", LOC4, "B"),
    case("option-B", "Option B", LOC4, "B"),
    case("i-choose", "I choose B", LOC4, "B"),
    case("my-answer", "My answer: B", LOC4, "B"),
    case("boxed", "\\boxed{B}", LOC4, "B"),
    case("boxed-text", "Final Answer: $\\boxed{\\text{C}}$", LOC4, "C"),
    case("bold-answer-label", "**Answer:** D", LOC4, "D"),
    case("go-with-option", "I'd go with option C.", LOC4, "C"),
    case("letter-is-correct", "B is correct.", LOC4, "B"),
    case("answer-is-lower", "the answer is c", LOC4, "C"),
    case("answer-is-option", "The answer is option D, the bottom right corner.", LOC4, "D"),
    case("i-think-its", "I think it's D.", LOC4, "D"),
    case("chinese-marker", "答案：C", LOC4, "C"),
]

JSON_ISH = [
    case("json-answer", '{"answer": "D"}', LOC4, "D"),
    case("json-answer-reason", '{"answer": "D", "reason": "dent at the bottom right"}', LOC4, "D"),
    case("json-python-quotes-lower", "{'answer': 'a'}", YN, "A"),
    case("json-fenced-choice", '```json\n{"choice": "B"}\n```', LOC4, "B"),
]

VERBOSE = [  # Qwen / InternVL style: answer first, then a description
    case("qwen-answer-then-location",
         "The answer is C. The defect is located at the bottom left of the image, near the edge of the plate.",
         LOC4, "C"),
    case("internvl-correct-answer-is",
         "Based on the image, the correct answer is D. Bottom right, where a small dent is visible.", LOC4, "D"),
    case("verbose-therefore-answer",
         "The anomaly appears as a thin line across the surface. Therefore, the answer is B.", CLS4, "B"),
    case("markdown-bold-first-line", "**B. Center**\n\nThe scratch is in the middle of the image.", LOC4, "B"),
    case("markdown-heading-then-letter", "### Answer\n**C**", LOC4, "C"),
]

CHAIN_OF_THOUGHT = [
    case("cot-final-line-answer",
         "Let me look at the image carefully.\nThe bottle cap is intact, but there is a dark spot on the label.\n"
         "This looks like a stain rather than a break.\nAnswer: C", CLS4, "C"),
    case("cot-so-the-answer-is",
         "The defect is a dent. It sits at the bottom right, away from the centre, so the answer is D.", LOC4, "D"),
    case("cot-marker-beats-option-mentions",
         "Step 1: Locate the anomaly. It runs across the middle of the part.\n"
         "Step 2: Option A (top left) and option D (bottom right) do not match.\nSo the answer is B.", LOC4, "B"),
    case("cot-discusses-options-then-answers",
         "Option A says the defect is a crack, but the edges are smooth. Option B fits the thin linear mark "
         "better, so the answer is B.", CLS4, "B"),
    case("cot-so-it-is", "The object has three coloured wires in a round sheath, so it is C.", OBJ5, "C"),
    case("cot-last-line-letter", "The mark is a thin groove, typical of abrasion.\n\nB", CLS4, "B"),
    case("echo-then-option-text",
         "A. Top left.\nB. Center.\nC. Bottom left.\nD. Bottom right.\nThe scratch is in the center of the image.",
         LOC4, "B"),
    case("echo-then-answer", "A. Yes.\nB. No.\nAnswer: A", YN, "A"),
    case("negated-letter-then-letter", "The answer is not A, it is B.", LOC4, "B"),
]

YES_NO = [  # AnomalyGPT style free text on the Anomaly Detection question (its options are Yes and No)
    case("yn-bare-yes", "Yes", YN, "A"),
    case("yn-bare-no-lower", "no", YN, "B"),
    case("yn-anomalygpt-yes", "Yes, there is an anomaly in the image.", YN, "A"),
    case("yn-anomalygpt-no", "No, the object is normal.", YN, "B"),
    case("yn-no-defect-visible", "No defect is visible.", YN, "B"),
    case("yn-there-is-no-defect", "There is no defect in the image.", YN, "B"),
    case("yn-dont-see-anomalies", "I don't see any anomalies on the surface of the screw.", YN, "B"),
    case("yn-defect-free", "The surface is defect-free.", YN, "B"),
    case("yn-flipped-yes", "Yes.", NY, "B"),
    case("yn-flipped-no", "No, there is no anomaly.", NY, "A"),
    case("yn-no-doubt-is-not-no", "There is no doubt: yes, the cable insulation is damaged.", YN, "A"),
    case("yn-letter-beats-words", "B. No, the object looks normal.", YN, "B"),
    case("yn-both-polarities", "There is no defect on the cap, but yes, the label is crooked.", YN, None),
    # decision: an affirmative description is not a plain "yes" (see the module docstring)
    case("yn-affirmative-description-is-invalid", "A defect is visible.", YN, None),
    case("yn-object-looks-normal-is-invalid", "The object looks normal.", YN, None),
    # the options decide, not the task: a Yes and a No option make Yes/No phrasings count
    case("yn-exact-yes", "Yes.", YN, "A"),
    case("yn-free-yes-with-description", "Yes, there is a crack near the rim.", YN, "A"),
    case("yn-free-no-with-description", "No, the part looks normal.", YN, "B"),
    case("yn-nothing-found", "The product is normal; nothing was found.", YN, "B"),
    case("yn-nothing-abnormal", "I checked the whole surface and see nothing abnormal.", NY, "A"),
    case("yn-nothing-found-but-yes", "Nothing was found at first, but yes, there is a dent.", YN, None),
    case("yn-words-on-other-options-stay-text", "Yes, there is a crack.", CLS4, "A"),
    case("yn-description-alone-still-invalid", "There is a crack near the rim.", YN, None),
]

TAGS = [  # answers wrapped in tags or markup
    case("tag-answer", "<answer>B</answer>", LOC4, "B"),
    case("tag-answer-spaced", "<answer> C </answer>", LOC4, "C"),
    case("tag-answer-A", "<answer>A</answer>", LOC4, "A"),
    case("tag-final-answer", "<think>B or C?</think>\n<final_answer>C</final_answer>", LOC4, "C"),
    case("tag-bracket", "[ANSWER] D [/ANSWER]", LOC4, "D"),
    case("tag-answer-upper", "<ANSWER>b</ANSWER>", LOC4, "B"),
    case("tag-bold-answer", "Answer: **B**", LOC4, "B"),
    case("tag-bold-label", "**Answer:** C", LOC4, "C"),
    case("tag-html-bold", "The answer: <b>D</b>", LOC4, "D"),
    case("tag-two-answers", "<answer>B</answer> <answer>C</answer>", LOC4, None),
    case("tag-answer-is-article", "<answer>A scratch near the top</answer>", LOC4, None),
]

REJECTIONS = [  # one option ruled out, another chosen
    case("reject-paren-then-answer", "A) is wrong; the answer is B", LOC4, "B"),
    case("reject-then-answer", "A is wrong, the answer is B.", LOC4, "B"),
    case("reject-incorrect-correct", "A is incorrect. B is correct.", LOC4, "B"),
    case("reject-wrapped-then-wrapped", "(A) is not right; (C) is.", LOC4, "C"),
    case("reject-both-sides", "A) is wrong; B) is right", LOC4, "B"),
    case("reject-rule-out", "We can rule out option A and option D, so it is C.", LOC4, "C"),
    case("reject-not-the-answer", "B is not the answer. The defect is at the bottom left, C.", LOC4, "C"),
    case("reject-only", "A is wrong.", LOC4, None),
    case("reject-two-left", "A is wrong, so it is B or C.", LOC4, None),
    case("reject-contradiction", "The answer is B. B is wrong.", LOC4, None),
    case("reject-article-is-prose", "This is not a scratch; the answer is D", LOC4, "D"),
    case("reject-html-bold-is-not-b", "The answer: <b>A</b>, top left", LOC4, "A"),
]

OPTION_TEXT = [
    case("text-exact", "Center", LOC4, "B"),
    case("text-contained", "The defect is located in the center.", LOC4, "B"),
    case("text-object", "The object is a bottle.", OBJ5, "B"),
    case("text-exact-longer-option", "Scratch on the surface", CLS5, "C"),
    case("text-longer-option-wins", "There is a long scratch on the surface near the rim.", CLS5, "C"),
    case("text-shorter-option-also-alone",
         "A scratch on the surface and another scratch near the cap.", CLS5, None),
    case("text-two-options", "It looks like a crack or a hole.", CLS4, None),
    case("text-article-then-option-text", "A scratch appears near the top.", CLS4, "B"),
    case("text-article-crack", "There is a crack in a corner.", CLS4, "A"),
]

TRAPS = [  # replies MMAD's regex would read as a letter; all invalid here
    case("trap-article-A-yes-no", "A defect is visible on the left.", YN, None),
    case("trap-article-A-no-option-text", "A scratch appears near the top.", LOC4, None),
    case("trap-article-a-in-sentence", "There is a crack in a corner.", LOC4, None),
    case("trap-part-B", "Part B of the object is cracked.", LOC4, None),
    case("trap-region-B", "The crack is in region B.", LOC4, None),
    case("trap-capitals-in-words", "DEFECT FOUND NEAR CAP-EDGE", LOC4, None),
    case("trap-abbreviation", "E.g. a dent, i.e. a deformation of the metal.", OBJ5, None),
    case("trap-answer-is-a-noun", "The answer is a dent near the rim.", LOC4, None),
]

TWO_OPTIONS_NAMED = [
    case("two-A-or-B", "A or B", LOC4, None),
    case("two-A-and-C", "A and C are both possible.", LOC4, None),
    case("two-either", "Either B or D.", LOC4, None),
    case("two-in-prose", "It could be B or C, the image is blurry.", LOC4, None),
    case("two-answer-either", "The answer is either B or D.", LOC4, None),
    case("two-slash", "B/C", LOC4, None),
    case("two-markers-disagree", "Answer: A\nFinal answer: B", LOC4, None),
    case("two-first-line-vs-marker", "B. Center.\nOn second thought, the answer is D.", LOC4, None),
    case("two-option-mentions", "Option A and option C both describe the mark.", LOC4, None),
    case("two-called-correct", "Either A or C is correct.", LOC4, None),
]

OUTSIDE_OPTIONS = [  # a letter that is not one of the question's options is invalid
    case("outside-C-of-2", "C", YN, None),
    case("outside-answer-E-of-4", "Answer: E", LOC4, None),
    case("outside-F-of-5", "The answer is F.", OBJ5, None),
    case("outside-paren-C-of-2", "(C) No", YN, None),
    case("outside-short-prose", "It's E.", LOC4, None),
]

REFUSALS_AND_EMPTY = [
    case("empty", "", YN, None),
    case("whitespace", "   \n\t ", YN, None),
    case("refusal", "I'm sorry, I can't help with that.", YN, None),
    case("refusal-mentions-options",
         "I'm sorry, but I cannot determine whether option A or B is correct from this image.", YN, None),
    case("refusal-as-an-ai", "As an AI language model, I cannot view images.", LOC4, None),
    case("unsure", "I'm not sure.", LOC4, None),
    case("names-nothing", "The image shows a metal part.", LOC4, None),
]

WEAK_LETTERS = [  # a bare capital in prose: decides in a short reply only
    case("weak-short", "It's B, the center.", LOC4, "B"),
    case("weak-short-no-marker", "Looks like B to me.", LOC4, "B"),
    case("weak-long-prose-ignored",
         "Looking closely at the surface of the metal plate, the mark near B seems to follow the machining "
         "direction and probably comes from handling during assembly of the part.", LOC4, None),
    case("weak-long-prose-falls-back-to-text",
         "The mark I would have called D, after looking at it for a while, turns out to sit right in the "
         "center of the part, where the stamping tool touches it.", LOC4, "B"),
]

CASES = (TERSE + LETTER_WITH_TEXT + MARKERS + JSON_ISH + VERBOSE + CHAIN_OF_THOUGHT + YES_NO + TAGS + REJECTIONS
         + OPTION_TEXT + TRAPS + TWO_OPTIONS_NAMED + OUTSIDE_OPTIONS + REFUSALS_AND_EMPTY + WEAK_LETTERS)


def test_corpus_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 70
    assert sum(c.expected is None for c in CASES) >= 10
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_extract_choice(c: Case) -> None:
    assert extract_choice(c.response, c.options) == c.expected


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_result_is_none_or_an_option_key(c: Case) -> None:
    got = extract_choice(c.response, c.options)
    assert got is None or got in c.options


def test_long_prose_threshold_is_what_the_weak_cases_assume() -> None:
    assert len("It's B, the center.".split()) <= MAX_WEAK_WORDS
    assert len(WEAK_LETTERS[2].response.split()) > MAX_WEAK_WORDS


ODD_INPUTS = {
    "very-long-articles": "A defect. " * 10_000,
    "very-long-letters": "B " * 50_000,
    "very-long-brackets": "(" * 100_000,
    "very-long-open-tags": "<b>" * 30_000 + "<answer>" * 10_000,
    "very-long-markers": "answer is " * 10_000,
    "only-punctuation": "?!...;:--**()[]{}",
    "emoji": "\U0001f50d\U0001f9d0 \u2705",
    "rtl-and-cjk": "\u05d0\u05d1\u05d2 \u062a\u0633\u062a \u7b54\u6848",
    "combining-marks": "B\u0301 A\u0308",
    "lone-surrogate": "\ud800B",
    "control-chars": "\x00\x01\x1b[31mB\x1b[0m",
    "nbsp-and-zero-width": "\u00a0\u200bB\u200b\u00a0",
    "backslashes": "\\\\boxed{\\",
    "newlines-only": "\n\n\r\n",
}


@pytest.mark.parametrize("text", ODD_INPUTS.values(), ids=ODD_INPUTS.keys())
def test_never_raises_on_odd_input(text: str) -> None:
    start = time.perf_counter()
    for options in (YN, LOC4, OBJ5):
        got = extract_choice(text, options)
        assert got is None or got in options
    assert time.perf_counter() - start < 30  # linear-time regexes: no catastrophic backtracking


def test_odd_arguments_are_invalid_not_errors() -> None:
    assert extract_choice(None, YN) is None  # type: ignore[arg-type]
    assert extract_choice(b"B", YN) is None  # type: ignore[arg-type]
    assert extract_choice(42, YN) is None  # type: ignore[arg-type]
    assert extract_choice("B", {}) is None
    assert extract_choice("B", {"1": "x", "AB": "y", "b": "z"}) is None
    assert extract_choice("B", None) is None  # type: ignore[arg-type]
    assert extract_choice("B", {"A": None, "B": 3}) == "B"  # type: ignore[dict-item]
    assert extract_choice("center", {"A": "...", "B": "Center"}) == "B"


def test_deterministic() -> None:
    results = [[extract_choice(c.response, c.options) for c in CASES] for _ in range(3)]
    assert results[0] == results[1] == results[2]


def test_identical_option_texts_are_ambiguous() -> None:
    assert extract_choice("The defect is a scratch.", {"A": "Scratch", "B": "scratch.", "C": "Hole"}) is None


@pytest.mark.parametrize("x, ok", [("A", True), ("H", True), ("I", False), ("a", False), ("AB", False),
                                   ("", False), (None, False), (1, False)])
def test_is_valid_letter(x: object, ok: bool) -> None:
    assert is_valid_letter(x) is ok


def test_letters_match_the_schema() -> None:
    from mmeval.data.schema import LETTERS as SCHEMA_LETTERS

    assert LETTERS == SCHEMA_LETTERS


# ---------------------------------------------------------------------------------------------
# choosing from option scores: one rule for ties and non-finite values

def _resp(text: str = "", **scores: float) -> Response:
    return Response(id="q", text=text, scores=scores or None)


@pytest.mark.parametrize("response, expected", [
    (_resp(A=-1.0, B=-2.0), "A"),
    (_resp(A=float("-inf"), B=-5.0), "B"),                     # impossible never wins
    (_resp(A=float("-inf"), B=float("-inf")), None),           # nothing possible: invalid
    (_resp("A", A=-1.0, B=float("nan")), None),                # a NaN makes the scores unusable, text or not
    (_resp("B", A=float("inf"), B=-1.0), None),                # so does +inf
    (_resp("B", A=-1.0, B=-1.0), "B"),                         # a tie: the text breaks it
    (_resp("The answer is A", A=-1.0, B=-1.0, C=-3.0), "A"),
    (_resp("C", A=-1.0, B=-1.0, C=-3.0), None),                # the text names a letter outside the tie
    (_resp("", A=-1.0, B=-1.0), None),                         # a tie and no text: invalid
    (_resp("B", Z=-1.0), "B"),                                 # scores for no offered letter: the text decides
])
def test_choose_reads_scores_by_one_rule(response: object, expected: str | None) -> None:
    from mmeval.answers import choose

    assert choose(response, {"A": "Yes.", "B": "No.", "C": "Maybe."}) == expected  # type: ignore[arg-type]


def test_non_finite_scores_are_written_as_null_not_infinity() -> None:
    import json

    from mmeval.data import Question
    from mmeval.predictions import dumps
    from mmeval.prompting.messages import Message, Request, Response, TextPart
    from mmeval.run.prepare import Prepared
    from mmeval.run.runner import to_prediction

    q = Question(id="k#0", image="k", index=0, dataset="D", category="c", type_label="Anomaly Detection",
                 task="Anomaly Detection", question="?", options={"A": "Yes.", "B": "No."}, answer="A",
                 is_normal=False, query_path="/x.png", template_paths=(), mask_path=None)
    req = Request(id=q.id, task=q.task, image=q.image, options=q.options, message=Message(parts=[TextPart(text="?")]))
    pred = to_prediction(Prepared(q, req, "A"), Response(id=q.id, scores={"A": float("-inf"), "B": -0.1}), "m", "c")
    line = dumps(pred)
    assert json.loads(line)["scores"] == {"A": None, "B": -0.1} and "Infinity" not in line and pred.choice == "B"


def test_closest_option_reads_a_reply_that_names_no_letter() -> None:
    from mmeval.answers import closest_option

    options = {"A": "A crack.", "B": "A hole.", "C": "No defect."}
    assert closest_option("there is a crack", options) == "A"
    assert closest_option("I see a HOLE   in it", options) == "B"
    assert closest_option("", options) is None and closest_option("   ", options) is None
    assert closest_option("x", {"A": "y", "B": "z"}) is None  # a tie picks nothing


def test_choose_falls_back_to_the_closest_option_only_when_asked_and_only_for_letterless_replies() -> None:
    options = {"A": "A crack.", "B": "A hole.", "C": "No defect."}
    letterless = Response(id="q", text="there is a small hole")
    assert choose(letterless, options) is None
    assert choose(letterless, options, "closest") == "B"
    assert choose(Response(id="q", text="The answer is A; there is a small hole"), options, "closest") == "A"
    assert choose(Response(id="q", text="", error="timeout"), options, "closest") is None


def test_log_sum_exp_keeps_impossible_and_unusable_apart() -> None:
    import math

    from mmeval.prompting.messages import log_sum_exp

    inf, nan = float("inf"), float("nan")
    assert log_sum_exp([-1.0]) == -1.0
    assert log_sum_exp([-1.0, -1.0]) == pytest.approx(-1.0 + math.log(2))
    assert log_sum_exp([-inf, -0.5]) == -0.5  # an impossible spelling adds nothing
    assert log_sum_exp([-inf]) == -inf and log_sum_exp([-inf, -inf]) == -inf  # not NaN from -inf - -inf
    assert log_sum_exp([]) == -inf
    assert math.isnan(log_sum_exp([-1.0, nan])) and log_sum_exp([-1.0, inf]) == inf
