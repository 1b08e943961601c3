"""Likelihood scoring: the option whose continuation is most probable after the prompt wins, and the response
carries ``scores = {letter: log-prob}`` (summed over the continuation's tokens).

Three paths give the same scores, fastest first:

- prefix reuse: the prefix shared by an image's questions runs once (a batch-1 context), then each
  question's own tokens run against its KV cache, one row per question when every option is one token
  right after the prompt, else one row per option;
- whole prompts whose options are all one next token: right-padded batches, one forward each;
- anything else (multi-token options without a shared prefix): the prompt up to the first token an
  option's tokenisation changes is the context, each option a row against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from mmeval.model_adapters.hf.options import LikelihoodTarget
from mmeval.model_adapters.hf.prefix import group_by_prefix, prefix_context
from mmeval.model_adapters.hf.prompts import Item, PromptBuilder
from mmeval.model_adapters.hf.runtime import (
    Batching,
    ContinuationCache,
    Runtime,
    cache_of,
    cut,
    expand_cache,
)
from mmeval.prompting.messages import Response, top_option

#: scores of one batch of jobs: request id -> option -> log-prob
Scores = dict[str, dict[str, float]]


@dataclass
class Job:
    """Scoring of one item against a context: seq(o) = rest[:keep(o)] + targets(o)."""

    item: Item
    rest: list[int]
    opts: dict[str, tuple[int, list[int]]]

    @property
    def shared_row(self) -> bool:
        """Every option is one token right after the whole rest: one row answers them all."""
        return all(keep == len(self.rest) and len(t) == 1 for keep, t in self.opts.values())


class Query(NamedTuple):
    """One log-prob to read: at ``pos`` of ``row`` (-1: the context's last position), of ``token``."""

    row: int
    pos: int
    token: int
    rid: str
    option: str


@dataclass
class RowPlan:
    """The continuation rows to run against a context's cache, and the log-probs to read from them."""

    rows: list[list[int]]
    owner: list[str]  # the request id each row belongs to
    queries: list[Query]

    def add_row(self, tokens: list[int], rid: str) -> int:
        self.rows.append(tokens)
        self.owner.append(rid)
        return len(self.rows) - 1

    def by_row(self) -> dict[int, list[Query]]:
        """The queries read from each row, in the order they were made."""
        out: dict[int, list[Query]] = {}
        for q in self.queries:
            if q.row >= 0:
                out.setdefault(q.row, []).append(q)
        return out


def plan_rows(jobs: list[Job]) -> RowPlan:
    """The rows that answer these jobs: one per job when it has a shared row, else one per option."""
    plan = RowPlan([], [], [])
    for job in jobs:
        rid = job.item.req.id
        if job.shared_row:
            r = plan.add_row(job.rest, rid) if job.rest else -1
            for o, (_, t) in job.opts.items():
                plan.queries.append(Query(r, len(job.rest) - 1, t[0], rid, o))
            continue
        for o, (keep, t) in job.opts.items():
            seq = job.rest[:keep] + t
            r = plan.add_row(seq[:-1], rid) if len(seq) > 1 else -1
            for j in range(len(seq) - len(t), len(seq)):
                plan.queries.append(Query(r if j >= 1 else -1, j - 1, seq[j], rid, o))
    return plan


def next_token_only(item: Item) -> bool:
    """Every option is a single token right after the whole prompt (one forward of the prompt scores them all)."""
    return all(k == len(item.raw) and len(t) == 1 for k, t in item.targets.values())


class LikelihoodScorer:
    """Scores the options of prepared items; one per ``predict`` call, with that call's settings."""

    def __init__(self, runtime: Runtime, prompts: PromptBuilder, batching: Batching, reuse: bool,
                 target: LikelihoodTarget) -> None:
        self.runtime = runtime
        self.prompts = prompts
        self.batching = batching
        self.reuse = reuse
        self.target = target

    def score(self, items: list[Item]) -> Iterator[Response]:
        """One response per item: prefix groups first, then the items run whole."""
        for it in items:
            self.prompts.add_targets(it, self.target)
        groups, whole = group_by_prefix(items, self.reuse)
        for group in groups:
            split = self._group_jobs(group)
            if split is None:
                whole.extend(group)
                continue
            ctx, jobs = split
            ctx_len = int(ctx["input_ids"].shape[1])
            scores = self._score_context(ctx, jobs)
            for job in jobs:
                yield self._response(job.item, scores[job.item.req.id], ctx_len + len(job.rest), reused=ctx_len)
        yield from self._score_whole(whole)

    def _group_jobs(self, group: list[Item]) -> tuple[dict[str, Any], list[Job]] | None:
        """The group's shared context and one job per item against it (None: the group runs whole)."""
        split = prefix_context(group, self.prompts, self.runtime)
        if split is None:
            return None
        ctx, rests = split
        jobs = []
        for it, rest in zip(group, rests, strict=True):
            base = len(it.raw) - len(rest)  # raw tokens before the rest
            jobs.append(Job(it, rest, {o: (k - base, t) for o, (k, t) in it.targets.items()}))
        if any(keep < 0 for job in jobs for keep, _ in job.opts.values()):  # an answer merges into the prefix
            return None
        return ctx, jobs

    def _score_whole(self, whole: list[Item]) -> Iterator[Response]:
        """Items without a usable prefix: batched when their options are next tokens, else one by one."""
        single = sorted((it for it in whole if next_token_only(it)), key=lambda it: len(it.raw))
        for chunk in self.batching.chunks(single):
            yield from self.runtime.split_on_oom(self._score_last, chunk)
        for it in whole:
            if not next_token_only(it):
                yield self._score_alone(it)

    def _score_alone(self, it: Item) -> Response:
        """The prompt up to the earliest option start as the context; each option a row against it."""
        keep = min(k for k, _ in it.targets.values())
        ctx = cut(self.runtime.process([it.images], [it.text]), len(it.raw) - keep)
        job = Job(it, it.raw[keep:], {o: (k - keep, t) for o, (k, t) in it.targets.items()})
        scores = self._score_context(ctx, [job])
        return self._response(it, scores[it.req.id], int(ctx["input_ids"].shape[1]) + len(job.rest))

    def _response(self, item: Item, scores: dict[str, float], prompt_tokens: int, reused: int = 0) -> Response:
        self.runtime.count_answer(prompt_tokens, reused)
        best = top_option(scores)  # max() would pick a letter beside a NaN score; -inf is never the best
        return Response(id=item.req.id, text=best[0] if len(best) == 1 else "", scores=scores,
                        usage={"prompt_tokens": prompt_tokens, "completion_tokens": 0})

    def _score_last(self, chunk: list[Item]) -> Iterator[Response]:
        """Whole prompts in one right-padded batch; every option is the next token after the prompt."""
        import torch

        inputs = self.runtime.process([it.images for it in chunk], [it.text for it in chunk])
        last = inputs["attention_mask"].sum(1) - 1
        keep = torch.unique(last)
        out = self.runtime.forward(inputs, use_cache=False, logits_to_keep=keep)
        col = torch.searchsorted(keep, last)
        logp = torch.log_softmax(out.logits[torch.arange(len(chunk), device=col.device), col].float(), dim=-1)
        for i, it in enumerate(chunk):
            scores = {o: float(logp[i, t[0]]) for o, (_, t) in it.targets.items()}
            yield self._response(it, scores, int(last[i]) + 1)

    def _score_context(self, ctx: dict[str, Any], jobs: list[Job]) -> Scores:
        """Run a batch-1 context once (images included), then every continuation row against its cache."""
        import torch

        out = self.runtime.forward(ctx, use_cache=True, logits_to_keep=1)
        cache = cache_of(out)
        ctx_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        plan = plan_rows(jobs)
        scores: Scores = {job.item.req.id: {o: 0.0 for o in job.opts} for job in jobs}
        from_ctx = [q for q in plan.queries if q.row == -1]
        for q, v in zip(from_ctx, ctx_logp[[q.token for q in from_ctx]].tolist(), strict=True):
            scores[q.rid][q.option] += v
        by_row = plan.by_row()
        order = sorted(range(len(plan.rows)), key=lambda r: len(plan.rows[r]))
        if self.batching.invariant:  # a question's rows together
            order = sorted(order, key=lambda r: plan.owner[r])
        chunks = list(self.batching.chunks(order, owner=plan.owner.__getitem__))
        cache_for = self._cache_for(cache, chunks, plan.rows)
        for chunk in chunks:
            for _ in self.runtime.split_on_oom(lambda c: self._run_rows(c, plan.rows, by_row, cache_for, scores),
                                               chunk):
                pass
        return scores

    @staticmethod
    def _cache_for(cache: Any, chunks: list[list[int]], rows: list[list[int]]) -> Callable[[int], Any]:
        """How each batch of n rows gets the context's cache: written after the prefix in place where the
        cache allows it (no copy of the prefix per question), else a fresh expansion per call."""
        if chunks and ContinuationCache.supports(cache):
            room = ContinuationCache(cache, max(len(c) for c in chunks), max(len(r) for r in rows))
            return room.for_rows
        return lambda n: expand_cache(cache, n)

    def _run_rows(self, chunk: list[int], rows: list[list[int]], by_row: dict[int, list[Query]],
                  cache_for: Callable[[int], Any], scores: Scores) -> Iterator[None]:
        """One batch of rows against the context's cache; adds the log-probs read from them to ``scores``."""
        import torch

        # right padding after a shared, unpadded context: causal attention already keeps every real token
        # from seeing the padding, so no attention mask is needed (and positions follow from the cache)
        m = self.runtime.loaded
        n, width = len(chunk), max(len(rows[r]) for r in chunk)
        ids = torch.full((n, width), m.tok.pad_token_id, dtype=torch.long)
        for i, r in enumerate(chunk):
            ids[i, : len(rows[r])] = torch.tensor(rows[r])
        positions = sorted({q.pos for r in chunk for q in by_row[r]})
        keep = torch.tensor(positions, device=m.input_device)
        out = self.runtime.forward({"input_ids": ids.to(m.input_device)}, cache=cache_for(n),
                                   use_cache=True, logits_to_keep=keep)
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        col = {p: c for c, p in enumerate(positions)}
        picks = [(i, col[q.pos], q) for i, r in enumerate(chunk) for q in by_row[r]]
        values = logp[[p[0] for p in picks], [p[1] for p in picks], [p[2].token for p in picks]].tolist()
        for (_, _, q), v in zip(picks, values, strict=True):
            scores[q.rid][q.option] += v
        yield None
