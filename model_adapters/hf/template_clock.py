"""The clock a chat template reads, stopped at one day, so that a checkpoint gets the same prompt every day.

transformers gives chat templates one clock: ``strftime_now(format)``, a global of its template environment
that formats ``datetime.now()``. Some published templates write the day it gives into the prompt: Mistral Small
3.1's default system prompt states the current date (``strftime_now("%Y-%m-%d")``), Llama 3.2 Vision's system
header a "Today Date:" line (``date_string``, taken from ``strftime_now("%d %b %Y")`` when the caller passes
none). Rendered as published, such a prompt changes at midnight: the same config would give other predictions
tomorrow, and a resumed run would mix answers to two prompts.

So every prompt is rendered with that clock stopped at one day: ``-M template_date`` (default
:data:`DEFAULT_TEMPLATE_DATE`), midnight. Whether a checkpoint's template writes the day into mmeval's prompts
is found by rendering a prompt shaped like them (one user turn: a text, an image, a text) on two days that
differ in every field, date and time: a template that reads the clock without writing it (Llama 4 computes a
``date_string`` it never writes), or writes it only for conversations mmeval never sends (Llama 3.2 Vision
dates only prompts without images), gives the same prompt twice and is left as it is: not a deviation, no
change to the run's identity.

Why the clock and not template variables: jinja's render variables do shadow the environment's globals, but
transformers 5 rebuilds every variable it passes to a template out of plain JSON data (its
``_plain_template_data``), so a ``strftime_now`` function passed to ``apply_chat_template`` reaches the
template as the string ``"<function>"``. A ``date_string`` variable would reach only the templates that read
it, in Llama's format; the stopped clock reaches every template, each writing the day in its own format.

The clock is stopped by replacing, while a prompt renders, the ``datetime`` that transformers' chat-template
module reads the time from. :func:`clock_stops` checks once that this still controls ``strftime_now`` (a later
transformers could read the time another way); where it does not, a template that calls ``strftime_now`` is
refused with a message rather than rendered with the real day.

transformers is imported inside the functions: the CLI imports this package for --help.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, tzinfo
from functools import cache
from typing import Any

from mmeval.model_adapters.base import AdapterError
from mmeval.prompting.messages import ImagePart, Part, TextPart, to_hf_conversation

#: the day templates are rendered on unless ``-M template_date`` says otherwise (why this one: README)
DEFAULT_TEMPLATE_DATE = date(2025, 1, 1)

#: two moments that differ in every field a template could format (year, month, day, weekday, hour, minute, second)
PROBE_MOMENTS = (datetime(2001, 2, 3, 4, 5, 6), datetime(2042, 11, 28, 19, 58, 57))

#: the shape of every prompt mmeval sends: one user turn holding texts and images
PROBE_PARTS: list[Part] = [TextPart(text="Instruction."), ImagePart(path="probe.png"), TextPart(text="Question?")]


def template_moment(day: date) -> datetime:
    """The moment templates see for ``-M template_date=day``: that day's midnight."""
    return datetime.combine(day, time())


@cache
def _stopped(moment: datetime) -> type[datetime]:
    """A ``datetime`` class whose ``now()`` is always ``moment`` (in the time zone asked for, if one is)."""

    class Stopped(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Stopped:
            return cls.combine(moment.date(), moment.time(), tzinfo=tz)

    return Stopped


#: held while the clock is stopped: the clock is one module global, so two threads rendering at once would
#: otherwise undo each other's day (one rendering with the real clock, the other leaving it stopped for good)
_CLOCK_HELD = threading.RLock()


@contextmanager
def stopped_clock(moment: datetime) -> Iterator[None]:
    """Chat templates rendered inside see ``moment`` as now (``strftime_now``); nothing else's clock changes.
    Renderings on other threads wait until it is restarted."""
    from transformers.utils import chat_template_utils

    with _CLOCK_HELD:
        before = chat_template_utils.datetime
        chat_template_utils.datetime = _stopped(moment)  # type: ignore[misc]
        try:
            yield
        finally:
            chat_template_utils.datetime = before  # type: ignore[misc]


@cache
def clock_stops() -> bool:
    """Whether :func:`stopped_clock` controls the day chat templates see in the installed transformers."""
    from transformers.utils.chat_template_utils import render_jinja_template

    probe = '{{ strftime_now("%Y-%m-%d %H:%M:%S") }}'
    moment = PROBE_MOMENTS[0]
    try:
        with stopped_clock(moment):
            rendered: Any = render_jinja_template([[]], chat_template=probe)  # (prompts, generation indices)
    except Exception:  # noqa: BLE001 - transformers laid its template clock out otherwise: it does not stop
        return False
    return bool(rendered[0][0] == moment.strftime("%Y-%m-%d %H:%M:%S"))


def writes_the_date(processor: Any, template_args: dict[str, Any]) -> bool:
    """Whether a prompt of mmeval's shape, rendered by the processor's chat template with ``template_args``,
    depends on the day (or the time) it is rendered on."""
    if not check_clock(processor):
        return False
    conversation = to_hf_conversation(PROBE_PARTS)
    prompts = set()
    try:
        for moment in PROBE_MOMENTS:
            with stopped_clock(moment):
                prompts.add(processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False,
                                                          **template_args))
    except Exception:  # noqa: BLE001 - a template that cannot render such a prompt fails on the real ones, saying why
        return False
    return len(prompts) > 1


def template_source(processor: Any) -> str:
    """The chat template text(s) the processor renders with (several named ones joined), for messages."""
    template = getattr(processor, "chat_template", None)
    return "\n".join(template.values()) if isinstance(template, dict) else str(template or "")


def check_clock(processor: Any) -> bool:
    """Whether prompts of this processor can be rendered with the clock stopped (False: it need not be, the
    template never calls it); an AdapterError where the template calls the clock and it cannot be stopped."""
    if clock_stops():
        return True
    if "strftime_now" in template_source(processor):
        import transformers

        raise AdapterError(
            f"the chat template writes the time it is rendered (strftime_now), and mmeval cannot fix the day "
            f"templates see with transformers {transformers.__version__}, so its prompts would change from one day "
            "to the next; install the transformers version mmeval is tested with (see README)")
    return False
