"""Self-contained HTML pages (run report, comparison): jinja2 templates with autoescaping, figures embedded as
inline SVG and thumbnails as base64, no external resource, so a report opens offline and can be mailed.

Everything a model wrote (responses, and the question texts from the data) goes through jinja2's
autoescaping: a response ``<script>`` renders as text. What a page shows is put together by
:mod:`mmeval.report.run_page` and :mod:`mmeval.report.compare`; this module only renders it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mmeval.home import template_cache
from mmeval.report.colours import cell_colour

RUN_TEMPLATE = "run_report.html.j2"
COMPARE_TEMPLATE = "compare_report.html.j2"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞"
    return f"{v:.{digits}f}"


def _pval(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    v = float(value)
    return "< 0.0001" if v < 1e-4 else f"{v:.4f}"


def _signed(value: Any, digits: int = 1) -> str:
    s = _fmt(value, digits)
    return s if s == "–" or s.startswith("-") else "+" + s


def _pct(value: Any) -> str:
    s = _fmt(value)
    return s if s == "–" else s + "%"


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mmeval.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             bytecode_cache=template_cache())
    env.filters["f1"] = _fmt
    env.filters["f2"] = lambda v: _fmt(v, 2)
    env.filters["f3"] = lambda v: _fmt(v, 3)
    env.filters["pct"] = _pct
    env.filters["pval"] = _pval
    env.filters["signed"] = _signed
    env.filters["colour"] = cell_colour
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def write_page(path: Path, template: str, context: dict[str, Any]) -> Path:
    """Render ``template`` with ``context`` into ``path``."""
    path.write_text(render(template, **context), encoding="utf-8")
    return path
