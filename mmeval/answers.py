"""Read which option letter a model's free-text reply picks, or decide that the reply is invalid.

Why not MMAD's own parser
-------------------------
The official MMAD scripts take the first match of ``\\b([A-E])\\b`` and, failing that, the option
text closest to the reply by ``difflib`` with cutoff 0. Both silently invent answers:

* the English article "A" *is* a match, so "A defect is visible on the left." scores as option A
  (which, for Anomaly Detection, is usually "Yes" - right or wrong by luck);
* ``difflib`` with cutoff 0 always returns *some* option, so a refusal or an empty reply still gets
  scored as a real choice.

Here a reply that names no option, or names two different options, is **invalid** (``None``). The
scorer counts invalid replies and scores them as wrong, so a model that does not follow the answer
format is visible instead of being rewarded by chance.

Priority order
--------------
``extract_choice`` runs the stages below in order. Each stage either has nothing to say (the next
stage runs) or decides: the reply picks the one letter it found, or is invalid if that stage found
several different letters, or a letter that is not one of the question's options.

Letters the reply *rejects* ("A) is wrong", "B is incorrect", "not C", "rule out D") are set aside
first and never count as its choice: "A is wrong; the answer is B" picks B, and a stage that found
only rejected letters has nothing to say. A letter both stated as the answer and rejected makes the
reply invalid.

1. **Conclusive letters** - explicit answer markers ("The answer is C", "Answer: B", "Final answer:
   **D**", "The correct option is (B)", ``\\boxed{B}``, ``{"answer": "D"}``, "I choose B", "I'd say C",
   "B is correct", "..., so D", answer tags such as ``<answer>B</answer>``), plus a letter that opens
   the reply ("B", "B.", "(B)", "**B**", "B. Center.", "C: Scratch") or stands alone on its last line.
   These are how a model states its answer, so they win over letters mentioned in the reasoning; if
   they disagree the reply is invalid,
   as it is when one marker names several letters ("The answer is B or C", "A or B is correct").
   A line opening with "Option A ..." is reasoning about an option and is left to stage 3.
2. **Refusal** ("I'm sorry, I can't help with that", "I cannot determine ...", "As an AI ...") -
   invalid, whatever options it mentions. It runs after stage 1, so a hedge that still states an
   answer ("I'm sorry for the confusion; the answer is B") keeps it.
3. **Option mentions** - "option B", "choice C", "(B)", "**B**" inside prose. Labelled or wrapped
   letters are unambiguous references, but weaker than a stated answer.
4. **Bare letters in prose** ("It's B, the centre.") - weak evidence: a bare capital in a sentence may
   be a label ("region B", "type C crack"). One such letter decides only in a short reply (at most
   ``MAX_WEAK_WORDS`` words); in longer prose it is ignored and the option texts are tried instead.
   Two different bare letters ("A or B", "either B or D") make the reply invalid.
5. **Option text** - the reply equals one option's text, or contains exactly one option's full text
   (normalised: case, punctuation and spacing ignored; at least 3 characters; "yes"/"no" excluded
   since they occur in any prose). When one option's text contains another's ("Scratch" and
   "Scratch on the surface"), the longer one is matched first and its words are used up, so the more
   specific option wins unless the shorter text also occurs on its own. Several options -> invalid.
   There is no "closest option" fallback.
6. **Yes/No** (when the options are a Yes and a No, as in Anomaly Detection; what an option's Yes /
   No means is :func:`mmeval.tasks.option_polarity`) - a reply opening with "yes" / "no" selects the
   option meaning Yes / No (the opening word wins, as in "No, the object is normal"); otherwise the
   word "yes", or a negation bound to a defect word ("There is no defect", "I don't see any anomaly",
   "defect-free", "nothing was found"; "no doubt" is not one) does. Both polarities -> invalid.

What is never read as a letter
------------------------------
A bare letter followed by an ordinary word is prose, not a choice: the article in "A defect is
visible" or "There is a crack in a corner", a label in "Part B of the object". A bare letter counts
only when it is followed by punctuation, the end of the text, a linking word ("A or B", "B is
correct", "C because ..."), or the text of its own option ("C Scratch on the surface"). After
"option"/"choice" or a list separator ("A and C are possible") any capital counts; after an answer
marker the capitals B-H count ("The answer is B given ..."), while "A" still has to pass the test
because "The answer is a scratch" is common. Letters inside words, abbreviations
("e.g.", "U.S.A.") and hyphenated forms ("C-shaped") never count, nor does a letter preceded by "not".

Affirmative descriptions are *not* read as "Yes" (nor "The object looks normal" as "No"): "A defect is
visible" is invalid. A negation bound to a defect word literally says "no"; an affirmative description only means
"yes" by interpreting the content, and that interpretation would also read "A defect would look like
a dark spot" as Yes. The reply has to use the answer word (or a negation) itself.

Letters from an echoed option list (the reply repeats "A. Yes." / "B. No." on separate lines) are
dropped before the stages run, so an echo followed by "Answer: B" or by one option's text still counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from mmeval.prompting.messages import Response, top_option
from mmeval.tasks import yes_no_letters

__all__ = ["LETTERS", "MAX_WEAK_WORDS", "choose", "extract_choice", "is_valid_letter"]

#: option letters a question may use (mirrors ``mmeval.data.schema.LETTERS``; kept here so this module
#: needs only the standard library)
LETTERS = "ABCDEFGH"

#: a single bare letter in prose decides only in a reply of at most this many words
MAX_WEAK_WORDS = 20

Found = frozenset[str]
"""Letters a stage found; the reply is valid when this holds exactly one of the question's letters."""

Context = Literal["bare", "answer", "label"]
"""What precedes a letter: nothing special, an answer marker ("answer is"), or a label ("option")."""


def is_valid_letter(x: object) -> bool:
    """True for a one-character string among ``LETTERS`` (upper case), e.g. a parsed answer."""
    return isinstance(x, str) and len(x) == 1 and x in LETTERS


# ---------------------------------------------------------------------------------------------
# text normalisation

_TRANSLATE = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
    "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\ufeff": None,
})


#: formatting tags around text ("<b>D</b>"): the text stays, the tags go (a lone "<B>" is a wrapped letter)
_FORMAT_TAG_RE = re.compile(r"<(b|i|u|em|strong|code|mark|span|p|div)>([^<]{0,200})</\1>", re.IGNORECASE)


def _clean(text: str) -> str:
    """NFKC (full-width "Ｂ" -> "B"), straight quotes, no zero-width characters, "\\n" newlines, no
    formatting tags."""
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    text = _FORMAT_TAG_RE.sub(lambda m: m[2], text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _norm(text: str) -> str:
    """Lower case, punctuation and underscores as spaces, single spaces: for comparing texts."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


@dataclass(frozen=True)
class _Question:
    text: str                 #: the cleaned reply
    options: dict[str, str]   #: valid letter -> normalised option text
    rejected: frozenset[str]  #: letters the reply rules out ("A is wrong")


# ---------------------------------------------------------------------------------------------
# is this letter a reference to an option?

#: words after which a bare letter is a reference ("A or B", "B is correct"), never an article/label
_LINKING_WORDS = frozenset("""
    is was are were seems seem appears appear looks look would should must or and nor vs versus
    because since as given due which but though although while whereas then fits matches describes
    best correctly accurately to
""".split())

#: characters after which a bare letter is a reference ("B.", "C:", "A,", "D (bottom right)")
_PUNCT_AFTER = frozenset("\n.,:;!?()[]{}<-\u2013\u2014/&|")

#: how far after a letter we look when comparing with the option text (keeps long replies linear)
_LOOKAHEAD = 300


def _reads_as_letter(letter: str, closed: bool, context: Context, after: str, options: dict[str, str]) -> bool:
    """Whether ``letter`` (followed by the text ``after``) names an option rather than being prose.

    ``closed``: a closing bracket or markup follows the letter ("(B)", "**A**") - always a reference.
    After "option"/"choice" a capital is a reference; after an answer marker a capital other than A is
    ("The answer is a scratch" is common, "The answer is B given ..." is not prose). Otherwise the letter
    must be followed by punctuation, the end, a linking word, or its own option's text.
    """
    if closed:
        return True
    if letter.isupper() and (context == "label" or (context == "answer" and letter != "A")):
        return True
    after = after.lstrip(" \t")
    if not after or after[0] in _PUNCT_AFTER:
        return True
    word = re.match(r"[A-Za-z]+", after)
    if word and word.group().lower() in _LINKING_WORDS:
        return True
    text = options.get(letter.upper(), "")
    return bool(text) and (_norm(after[: 2 * len(text) + 20]) + " ").startswith(text + " ")


# one letter with optional label and wrapping: "B", "(B)", "**b**", "option C", "'D'"
_ITEM_RE = re.compile(
    r"[ \t]*(?P<label>(?:option|choice|letter)[ \t]*)?"
    r"(?P<open>[\"'*_`(\[{<]{0,3})[ \t]*"
    r"(?P<letter>[A-Ha-h])(?![A-Za-z0-9]|'[A-Za-z]|-[A-Za-z0-9]|\.[A-Za-z0-9])"
    r"(?P<close>[\"'*_`)\]}>]{0,3})",
    re.IGNORECASE,
)
# between letters of a list: "A or B", "B, C", "A/B", "C and D", "B vs. D"
_SEP_RE = re.compile(
    r"[ \t]*(?:,[ \t]*(?:(?:or|and)\b)?|/|&|\+|(?:or|and|nor|versus|vs\.?)(?![A-Za-z]))[ \t]*",
    re.IGNORECASE,
)
_EITHER_RE = re.compile(r"[ \t]*(?:either|both)\b", re.IGNORECASE)


def _letter_list(text: str, pos: int, context: Context, options: dict[str, str]) -> list[str]:
    """The letters named at ``text[pos:]``: "B", "either B or D", "A, B and C" (upper case).

    Letters after a separator are references whatever follows them ("A and C are possible").
    """
    if m := _EITHER_RE.match(text, pos):
        pos = m.end()
    letters: list[str] = []
    while m := _ITEM_RE.match(text, pos):
        ctx: Context = "label" if m["label"] or letters else context
        if not _reads_as_letter(m["letter"], bool(m["close"]), ctx, text[m.end():m.end() + _LOOKAHEAD], options):
            break
        letters.append(m["letter"].upper())
        pos = m.end()
        if not (sep := _SEP_RE.match(text, pos)):
            break
        pos = sep.end()
    return letters


def _letters_after(patterns: tuple[re.Pattern[str], ...], text: str, context: Context,
                   options: dict[str, str]) -> list[str]:
    """Letters named right after any match of any of ``patterns``."""
    return [letter for pattern in patterns for m in pattern.finditer(text)
            for letter in _letter_list(text, m.end(), context, options)]


# ---------------------------------------------------------------------------------------------
# letters the reply rules out

_REJECT_AFTER_RE = re.compile(
    r"(?<![A-Za-z0-9'])(?:(?i:option|choice)[ \t]+)?[\"'*_`(\[]{0,3}([A-H])[\"'*_`)\]]{0,3}[ \t]*"
    r"(?i:(?:is|seems|appears|would be|must be|can be|should be)[ \t]+)?(?i:(?:clearly|definitely|certainly)[ \t]+)?"
    r"(?i:wrong|incorrect|false|inaccurate|ruled out|excluded|eliminated|impossible"
    r"|not[ \t]+(?:correct|right|it|true|accurate|the[ \t]+(?:correct[ \t]+|right[ \t]+)?answer))\b",
)
_REJECT_BEFORE_RE = re.compile(
    r"\b(?i:not|rule[ \t]+out|ruling[ \t]+out|exclude|excluding|eliminate|eliminating|reject|rejecting)[ \t]+"
    r"(?:(?i:option|choice)[ \t]+)?[\"'*_`(\[]{0,3}([A-H])(?![A-Za-z0-9])"
)


def _rejected(text: str) -> frozenset[str]:
    """Capital letters the reply rules out: "A) is wrong", "B is incorrect", "not C", "rule out option D"."""
    return frozenset(m[1] for pattern in (_REJECT_AFTER_RE, _REJECT_BEFORE_RE) for m in pattern.finditer(text))


# ---------------------------------------------------------------------------------------------
# stage 1: conclusive letters

_VERB = r"(?:is|would be|will be|should be|must be|seems to be|appears to be|remains)"
_ANSWER_MARKERS = (
    # "The answer is C", "Answer: B", "Answer:B.", "correct option is (B)", '{"answer": "D"}'
    re.compile(r"\b(?:answer|option|choice)\b[\"'*_`]*[ \t]*(?:" + _VERB + r"\b[ \t]*:?|:|=|->)[ \t*_`]*",
               re.IGNORECASE),
    re.compile(r"(?:答案|选项)[ \t]*(?:是|为|:)[ \t]*"),
    # "I choose B", "I'd go with option C", "Selected: D"
    re.compile(r"\b(?:choose|chose|select|selected|pick|picked|go with|going with|opt for)\b[ \t]*:?",
               re.IGNORECASE),
    re.compile(r"\bi(?:'d| would)[ \t]+say[ \t]+(?:it(?:'s| is)[ \t]+)?", re.IGNORECASE),
    re.compile(r"\bi[ \t]+(?:think|believe)[ \t]+(?:it(?:'s| is)[ \t]+)?", re.IGNORECASE),
    # "..., so D." / "Therefore, it is B"
    re.compile(r"\b(?:so|thus|therefore|hence)\b,?[ \t]+(?:it(?:'s| is)[ \t]+)?", re.IGNORECASE),
)
_BOXED_RE = re.compile(r"\\boxed[ \t]*\{[ \t]*(?:\\text(?:bf|rm)?[ \t]*\{[ \t]*)?")
# <answer>B</answer>, <final_answer> C </final_answer>, [answer]D[/answer]
_TAG_RE = re.compile(r"[<\[][ \t]*(?:final[ _-]?)?(?:answer|choice|option)[ \t]*[>\]][ \t\n]*", re.IGNORECASE)
_IS_CORRECT_RE = re.compile(
    r"(?<![A-Za-z0-9'])(?:(?:option|choice)[ \t]+)?[\"'*_`(\[]{0,3}([A-Ha-h])[\"'*_`)\]]{0,3}"
    r"[ \t]+is[ \t]+(?:the[ \t]+)?(?:correct|right|best|most[ \t]+(?:likely|accurate|appropriate|suitable))\b",
    re.IGNORECASE,
)
# the letter just before "B is correct" in "A or B is correct"
_LETTER_BEFORE_RE = re.compile(
    r"(?<![A-Za-z0-9'])([A-Ha-h])[\"'*_`)\]]{0,3}[ \t]*(?:,|/|&|\bor|\band|\bnor)[ \t]*"
    r"(?:(?:option|choice)[ \t]+)?[\"'*_`(\[]{0,3}$",
    re.IGNORECASE,
)


def _letters_called_correct(text: str) -> list[str]:
    """"B is correct", "(C) is the best answer"; "A or B is correct" gives both letters."""
    found = []
    for m in _IS_CORRECT_RE.finditer(text):
        found.append(m[1].upper())
        if before := _LETTER_BEFORE_RE.search(text, max(0, m.start(1) - 40), m.start(1)):
            found.append(before[1].upper())
    return found


_BULLET_RE = re.compile(r"[ \t]*(?:[-\u2022>#]+[ \t]*)?")


def _line_letters(line: str, options: dict[str, str]) -> list[str]:
    """Letters a whole line opens with: "B", "B.", "(B)", "**B**", "B. Center.", "A or B".

    A line opening with "Option A ..." is usually reasoning about that option, so it is left to the
    option-mention stage.
    """
    pos = _BULLET_RE.match(line).end()  # type: ignore[union-attr]
    if _LABEL_RE.match(line, pos):
        return []
    return _letter_list(line, pos, "bare", options)


def _conclusive(q: _Question) -> Found | None:
    """Explicit answer markers, plus a letter opening the reply or standing on its last line.

    A letter an answer marker names that the reply also rejects makes the reply invalid.
    """
    found = _letters_after((*_ANSWER_MARKERS, _TAG_RE), q.text, "answer", q.options)
    found += _letters_after((_BOXED_RE,), q.text, "label", q.options)
    found += _letters_called_correct(q.text)
    if q.rejected & set(found):
        return frozenset()
    lines = [line for line in q.text.split("\n") if line.strip()]
    if lines:
        found += _line_letters(lines[0], q.options) + _line_letters(lines[-1], q.options)
    return frozenset(found) or None


# ---------------------------------------------------------------------------------------------
# stage 2: refusals

_REFUSAL_RE = re.compile(
    r"\b(?:i[ \t]*(?:am|'m)[ \t]+sorry|i[ \t]+apologi[sz]e|as an ai\b"
    r"|(?:i|we)[ \t]+(?:cannot|can ?not|can't|am unable to|'m unable to|am not able to)[ \t]+"
    r"(?:help|assist|answer|determine|tell|provide|comply|decide|judge|evaluate|analy[sz]e|view|access|"
    r"process|make)\b"
    r"|unable to (?:determine|answer|help|assist|view|access|analy[sz]e|process)\b)",
    re.IGNORECASE,
)


def _refusal(q: _Question) -> Found | None:
    """A refusal or "can't determine" reply is invalid (an empty find), whatever options it mentions."""
    return frozenset() if _REFUSAL_RE.search(q.text) else None


# ---------------------------------------------------------------------------------------------
# stage 3: option mentions

_LABEL_RE = re.compile(r"\b(?:options?|choices?|letter)\b[ \t]*", re.IGNORECASE)
_WRAPPED_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:\(([A-Ha-h])\)|\[([A-Ha-h])\]|\*\*([A-Ha-h])\*\*|\"([A-Ha-h])\")(?![A-Za-z0-9])"
)


def _mentions(q: _Question) -> Found | None:
    """"option B", "choices A and C", "(B)", "**B**" in prose."""
    found = _letters_after((_LABEL_RE,), q.text, "label", q.options)
    found += [next(g for g in m.groups() if g).upper() for m in _WRAPPED_RE.finditer(q.text)]
    return frozenset(found) or None


# ---------------------------------------------------------------------------------------------
# stage 4: bare letters in prose

_BARE_RE = re.compile(
    r"(?<![A-Za-z0-9'])(?<![A-Za-z]\.)(?P<letter>[A-H])(?![A-Za-z0-9]|'[A-Za-z]|-[A-Za-z0-9]|\.[A-Za-z0-9])"
    r"(?P<close>[\"'*_`)\]}>]{0,3})"
)
_WORD_BEFORE_RE = re.compile(r"([A-Za-z]+)[ \t]*$")
#: a capital after these words is a label or a negation ("region B", "not A"), not a choice
_NOT_A_CHOICE_BEFORE = frozenset("""
    not part type region area zone section side grade class model panel level step point line row
    column figure fig table
""".split())
_WORD_RE = re.compile(r"\w+")


def _bare_letters(q: _Question) -> Found | None:
    """Capitals standing alone in prose; one of them decides only in a short reply."""
    found = set()
    for m in _BARE_RE.finditer(q.text):
        before = _WORD_BEFORE_RE.search(q.text, max(0, m.start() - 20), m.start())
        if before and before[1].lower() in _NOT_A_CHOICE_BEFORE:
            continue
        if _reads_as_letter(m["letter"], bool(m["close"]), "bare", q.text[m.end():m.end() + _LOOKAHEAD], q.options):
            found.add(m["letter"])
    if len(found) == 1 and len(_WORD_RE.findall(q.text)) > MAX_WEAK_WORDS:
        return None
    return frozenset(found) or None


# ---------------------------------------------------------------------------------------------
# stage 5: option text

_POLARITY_WORDS = frozenset({"yes", "no"})


def _option_text(q: _Question) -> Found | None:
    """The option whose text the reply is, or the only option whose text it contains (longest first)."""
    reply = _norm(q.text)
    if not reply:
        return None
    exact = frozenset(k for k, text in q.options.items() if text == reply)
    if exact:
        return exact
    by_text: dict[str, set[str]] = {}
    for k, text in q.options.items():
        if len(text) >= 3 and text not in _POLARITY_WORDS:
            by_text.setdefault(text, set()).add(k)
    rest, found = f" {reply} ", set()
    for text in sorted(by_text, key=len, reverse=True):
        if f" {text} " in rest:
            found |= by_text[text]
            rest = rest.replace(f" {text} ", " | ")
    return frozenset(found) or None


# ---------------------------------------------------------------------------------------------
# stage 6: yes / no

_DEFECT_WORD = r"(?:defect\w*|anomal\w*|abnormal\w*|flaw\w*|damage\w*|irregularit\w*|issues?|problems?)"
_NEGATED_DEFECT_RE = re.compile(
    r"\b(?:no|not|without|free of|don t|doesn t|isn t|aren t|can t|cannot|never)(?: \w+){0,3}? " + _DEFECT_WORD
    + r"|\b" + _DEFECT_WORD + r" free\b"
)
_IDIOMS_RE = re.compile(r"\b(?:no|without a|not a) doubt\b|\bnot only\b")
# "nothing was found", "nothing abnormal", "none detected"
_NOTHING_FOUND_RE = re.compile(
    r"\b(?:nothing|none)(?: \w+){0,2}? "
    r"(?:found|detected|seen|visible|observed|wrong|abnormal|unusual|amiss|noticeable)\b"
)


def _yes_no(q: _Question) -> Found | None:
    """Yes/No options: a reply opening with yes/no, or saying "yes" / negating a defect word."""
    yes, no = yes_no_letters(q.options)
    if yes is None or no is None:
        return None
    keys = {"yes": yes, "no": no}
    reply = _IDIOMS_RE.sub(" ", _norm(q.text))
    first = reply.split(" ", 1)[0]
    if first in keys:
        return frozenset({keys[first]})
    found = set()
    if re.search(r"\byes\b", reply):
        found.add(keys["yes"])
    if _NEGATED_DEFECT_RE.search(reply) or _NOTHING_FOUND_RE.search(reply):
        found.add(keys["no"])
    return frozenset(found) or None


# ---------------------------------------------------------------------------------------------
# echoed option lists and the entry point

_ECHO_LINE_RE = re.compile(r"^[ \t]*(?:[-*\u2022][ \t]*)?[(\[]?([A-H])[.):\]][ \t]*(.+?)[ \t]*$")


def _drop_option_echo(text: str, options: dict[str, str]) -> str:
    """Remove lines that repeat the option list ("A. Yes." / "B. No."), when two or more do."""
    lines = text.split("\n")
    echo: dict[int, str] = {}
    for i, line in enumerate(lines):
        m = _ECHO_LINE_RE.match(line)
        if m and options.get(m[1]) and _norm(m[2]) == options[m[1]]:
            echo[i] = m[1]
    if len(set(echo.values())) < 2:
        return text
    return "\n".join(line for i, line in enumerate(lines) if i not in echo)


_STAGES: tuple[Callable[[_Question], Found | None], ...] = (
    _conclusive, _refusal, _mentions, _bare_letters, _option_text, _yes_no,
)


def _decide(found: Found, options: Mapping[str, str]) -> str | None:
    """The one letter found, if it is one of the options; otherwise the reply is invalid."""
    if len(found) == 1:
        (letter,) = found
        return letter if letter in options else None
    return None


def extract_choice(response: str, options: Mapping[str, str]) -> str | None:
    """The option letter ``response`` picks among ``options`` (letter -> text), or None if invalid.

    Invalid means: empty, a refusal, no option named, two different options named, or a letter that
    is not one of ``options``. When the options are a Yes and a No, "Yes"/"No" phrasings select them.
    See the module docstring for the order of the rules and why. Never raises on odd input; a
    non-string response is invalid.
    """
    if not isinstance(response, str) or not isinstance(options, Mapping):
        return None
    bare = response.strip()
    if len(bare) == 1 and bare in options and is_valid_letter(bare):  # the common reply: the letter alone
        return bare
    opts = {k: _norm(str(v)) for k, v in options.items() if is_valid_letter(k)}
    if not opts:
        return None
    text = _drop_option_echo(_clean(response), opts)
    if not text.strip():
        return None
    question = _Question(text, opts, _rejected(text))
    for stage in _STAGES:
        found = stage(question)
        if found is None:
            continue
        kept = found - question.rejected
        if found and not kept:  # every letter this stage found is ruled out: it has nothing to say
            continue
        return _decide(kept, opts)
    return None


#: how a reply naming no option is read: ``invalid`` (mmeval's rule, above) or ``closest``: the option whose
#: text is most like the reply, as MMAD's AnomalyGPT script does (its prompt style uses it, to reproduce
#: that script's published row, see :mod:`mmeval.prompting.styles`; so does a family whose model never names
#: a letter, see ``ModelAdapter.reading``)
Fallback = Literal["invalid", "closest"]

#: what a prediction's ``note`` says when its choice is the closest option to a reply that named none
CLOSEST_NOTE = "read as the closest option: the reply names none"


def choose(response: Response, options: Mapping[str, str], fallback: Fallback = "invalid") -> str | None:
    """The option a response chose: its option scores decide when the model gave them, else its text.

    The scores are read by :func:`~mmeval.prompting.messages.top_option`: non-finite scores never mean
    "certain" (NaN makes the answer invalid, ``-inf`` rules a letter out). When several letters share
    the best score, the text breaks the tie if it names one of them; otherwise the answer is invalid.
    An error is no choice. With ``fallback="closest"`` a text naming no option takes :func:`closest_option`.
    """
    return choose_noted(response, options, fallback)[0]


def choose_noted(response: Response, options: Mapping[str, str],
                 fallback: Fallback = "invalid") -> tuple[str | None, str | None]:
    """:func:`choose`, and how the choice was read: :data:`CLOSEST_NOTE` when the ``closest`` fallback took it
    (so a prediction says which of its answers the model named and which were matched by their text)."""
    if response.error:
        return None, None
    if response.scores and any(k in options for k in response.scores):
        top = top_option(response.scores, options)
        if len(top) == 1:
            return top[0], None
        if not top:
            return None, None
        return extract_choice(response.text, {k: options[k] for k in top}), None
    choice = extract_choice(response.text, options)
    if choice is None and fallback == "closest":
        closest = closest_option(response.text, options)
        return closest, CLOSEST_NOTE if closest is not None else None
    return choice, None


def closest_option(text: str, options: Mapping[str, str]) -> str | None:
    """The letter whose option text is most similar to ``text`` (difflib's ratio, case and spacing ignored).

    MMAD's AnomalyGPT script reads replies this way. Unlike its cutoff-0 match, an empty reply and a tie
    between options stay invalid.
    """
    import difflib

    reply = " ".join(text.lower().split())
    if not reply or not options:
        return None
    ratios = {k: difflib.SequenceMatcher(None, reply, " ".join(v.lower().split())).ratio() for k, v in options.items()}
    best = max(ratios.values())
    top = [k for k, r in ratios.items() if r == best]
    return top[0] if len(top) == 1 else None
