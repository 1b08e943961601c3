"""``mmeval watch``: follow a training's checkpoint folder, evaluate the base and then every checkpoint as it
becomes ready, in step order, and keep the curve up to date.

Each step is an ordinary run directory (``OUT/steps/step-NNNNNNN/``: predictions, run.json, the report),
answered by the run engine, so a step cut short (Ctrl-C, ``kill -9``) resumes where it stopped when the
same command runs again, and the curve comes out the same. ``OUT/curve.json`` records which steps are
done; a checkpoint that was seen but deleted (``save_total_limit``) before it could be evaluated is
recorded as skipped, with the reason.

The base (step 0) is ``--base``, else the base model the first adapter names. Every adapter must name
that base: a checkpoint trained on another one stops the watch (exit 2) with both names.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mmeval.config import RunConfig
from mmeval.errors import InputError
from mmeval.report.run_report import write_run_report
from mmeval.run.rundir import RunDirLock, ensure_writable
from mmeval.run.runner import run
from mmeval.watch import checkpoints as ck
from mmeval.watch.backends import BACKENDS, Skip
from mmeval.watch.book import CurveBook, step_dir
from mmeval.watch.curve import setup_digest
from mmeval.watch.plots import DEFAULT_REFERENCES
from mmeval.watch.sinks import Sink, metrics


@dataclass
class WatchSettings:
    ckpt_dir: Path
    out: Path
    base: str | None = None
    backend: str = "hf"
    poll: float = 30.0
    until_final: bool = False
    once: bool = False
    references: tuple[str, ...] = DEFAULT_REFERENCES
    sinks: list[Sink] = field(default_factory=list)
    progress: bool = True
    #: called after every poll (tests use it to add checkpoints while a watch runs)
    on_poll: Callable[[int], None] | None = None


class StepIncomplete(Exception):
    """A step ended with questions unanswered or in error: the watch stops there, as ``mmeval run`` would."""


def say(text: str) -> None:
    print(f"mmeval watch: {text}", file=sys.stderr, flush=True)


def adapter_bases(ckpt_dir: Path) -> dict[Path, str | None]:
    """The base each adapter in the folder names (finished or not: only its small config file is read)."""
    from mmeval.model_adapters.hf.peft_adapters import adapter_base

    found: dict[Path, str | None] = {}
    for path in ck.listing(ckpt_dir).values():
        if ck.kind_of(path) == "adapter":
            try:
                found[path] = adapter_base(path)
            except Exception:  # noqa: BLE001 - a config still being written is read again at the next poll
                continue
    return found


class Watch:
    """One watch: its state (the steps done and skipped), the backend, the curve (module docstring)."""

    def __init__(self, template: RunConfig, settings: WatchSettings) -> None:
        self.template = template
        self.s = settings
        self.book = CurveBook(settings.out, f"mmeval watch: {settings.ckpt_dir.name}", setup_digest(template),
                              settings.references)
        self.entries = self.book.entries
        self.seen: dict[int, tuple[Path, ck.Kind | None]] = {}  # every checkpoint listed so far, and its kind
        self.base = settings.base
        self.backend = BACKENDS[settings.backend](template, self.base)
        self.readiness = ck.Readiness()
        self.final_done = False

    # ------------------------------------------------------------------------------------------ the loop

    def follow(self) -> str | None:
        """Watch until done (module docstring); returns None, or why a step is incomplete (the watch stopped there)."""
        ensure_writable(self.s.out)
        incomplete = None
        with RunDirLock(self.s.out):
            try:
                polls = 0
                while True:
                    self.poll()
                    polls += 1
                    if self.s.on_poll is not None:
                        self.s.on_poll(polls)
                    if (self.s.until_final and self.final_done) or (self.s.once and polls >= 2):
                        break
                    time.sleep(self.s.poll)
            except StepIncomplete as why:
                incomplete = str(why)
            finally:
                self.backend.release()
                for sink in self.s.sinks:
                    sink.close()
        self.book.write()
        return incomplete

    def poll(self) -> None:
        found = ck.listing(self.s.ckpt_dir)
        for step, (path, kind) in self.seen.items():
            if step not in found and step not in self.entries:
                self._skip(ck.Checkpoint(step, path, kind or "full"), "deleted before it was evaluated (the "
                                                                      "trainer's save_total_limit?)")
        self.seen.update({step: (path, ck.kind_of(path) or self.seen.get(step, (path, None))[1])
                          for step, path in found.items()})
        self._resolve_base()
        if self.base is not None and 0 not in self.entries:
            self._evaluate(ck.Checkpoint(0, Path(self.base), "base"))
        for step, path in found.items():
            if step in self.entries:
                self.final_done = self.final_done or ck.is_final(path)
                continue
            if not self.readiness.ready(path):
                continue
            kind = ck.kind_of(path)
            if kind is None:
                self._skip(ck.Checkpoint(step, path, "full"), "holds neither adapter_config.json nor config.json")
                continue
            if self.base is None and kind == "adapter":
                continue  # its base is not known yet (an unreadable adapter config is read again next poll)
            self._evaluate(ck.Checkpoint(step, path, kind))
            self.final_done = self.final_done or ck.is_final(path)

    def _resolve_base(self) -> None:
        bases = adapter_bases(self.s.ckpt_dir)
        for path, named in bases.items():
            if named is None:
                continue
            if self.base is None:
                self.base = named
                self.backend.base = named
                say(f"base model: {named}, as {path / ck.ADAPTER_CONFIG} names it (--base chooses one)")
            elif not ck.same_model(named, self.base):
                raise InputError(f"{path} is an adapter for '{named}', but the base is '{self.base}' "
                                 f"({'--base' if self.s.base else 'named by the first adapter'}); watch one "
                                 "training at a time, or give the right --base")

    # ------------------------------------------------------------------------------------------ one step

    def _evaluate(self, ckpt: ck.Checkpoint) -> None:
        try:
            digest = ck.weights_digest(ckpt.path)
            config = self.backend.config(ckpt, digest)
        except Skip as why:
            self._skip(ckpt, str(why))
            return
        except FileNotFoundError:
            self._skip(ckpt, "deleted while it was read")
            return
        out = step_dir(self.s.out, ckpt.step)
        say(f"step {ckpt.step} ({ckpt.name}, {ckpt.kind}) -> {out}")
        started = time.perf_counter()
        try:
            adapter = self.backend.adapter(ckpt, config, out)
            result = run(config, out, progress=self.s.progress, adapter=adapter)
        except Exception:
            if ckpt.kind != "base" and not ckpt.path.exists():
                self._skip(ckpt, "deleted while it was evaluated (the trainer's save_total_limit?)")
                return
            raise
        finally:
            self.backend.finished(ckpt, config)
        write_run_report(out, preds=result.written)
        status = result.status
        if not status.complete:  # as mmeval run: the step stays out of the curve until a rerun finishes it
            raise StepIncomplete(f"step {ckpt.step} ({ckpt.name}): {status.summary}; rerun the same command to "
                                 f"finish it (answers so far are kept in {out})")
        new = self.book.done(ckpt.step, ckpt.name, ckpt.kind, digest, time.perf_counter() - started)
        if new:
            values = metrics(new)
            say(f"step {ckpt.step}: " + ", ".join(f"{k.removeprefix('mmad/')} {v:.1f}" for k, v in values.items()
                                                   if k != "mmad/p_correct"))
            for sink in self.s.sinks:
                sink.log(ckpt.step, values)

    def _skip(self, ckpt: ck.Checkpoint, reason: str) -> None:
        say(f"step {ckpt.step} ({ckpt.name}) skipped: {reason}")
        self.book.skipped(ckpt.step, ckpt.name, ckpt.kind, reason)
