"""Does the text a boost injected give the answer away? A blind reader decides.

The reader sees the question, the options and the injected text, never the image. It scores each option
with BM25 (the ``bm25s`` library): the options are the documents, the injected text is the query, minus
the words of the question itself (echoing the question singles out nothing); words are lower-cased,
English stop words dropped and Snowball-stemmed (PyStemmer), so "scratches" meets "Scratch.". It picks
the option scoring highest; options tied at the top are ones it cannot tell apart, and it guesses among
them. Yes/No options (:func:`mmeval.tasks.option_polarity`) are never told apart: a text about a product
says nothing of whether this image is defective.

A question is **leaked** when the reader picks the correct option alone: the text singles it out. So
"Printed circuit board." is leaked by notes that say "circuit board", while notes that describe each of a
category's defects alike leak none of them. The run report compares the reader's accuracy per task
(a guess among k tied options counts 1/k) with the boosted model's, and splits the model's accuracy by
leaked and not leaked.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, lru_cache

from mmeval.tasks import option_polarity


@cache
def _stemmer() -> object:
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[str, ...]:
    import bm25s

    words = bm25s.tokenize([text], stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)[0]
    return tuple(words)


def read_blind(question: str, options: Mapping[str, str], text: str) -> list[str]:
    """The letters the reader ranks first (one when it can choose, several when they tie), in order."""
    letters = list(options)
    if not text.strip() or any(option_polarity(v) is not None for v in options.values()):
        return letters
    import bm25s

    asked = set(_tokens(question))
    query = [w for w in _tokens(text) if w not in asked]
    docs = [list(_tokens(options[k])) for k in letters]
    if not query or not any(docs):
        return letters
    model = bm25s.BM25()
    model.index(docs, show_progress=False)
    scores = [float(s) for s in model.get_scores(query)]
    top = max(scores)
    return [k for k, s in zip(letters, scores, strict=True) if s == top]


def leaked(picked: list[str], answer: str) -> bool:
    """Whether the reader singled out the correct option."""
    return picked == [answer]


def credit(picked: list[str], answer: str) -> float:
    """The reader's expected score on the question: a guess among the tied options it picked."""
    return 1.0 / len(picked) if answer in picked else 0.0
