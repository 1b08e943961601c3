"""CSV files a spreadsheet may open: text cells that would be read as a formula are neutralised.

Names come from the data (dataset, category, type, defect names) and may start with ``=``, ``+``, ``-``,
``@`` or a tab; a spreadsheet runs such a cell as a formula (CSV injection). Such text gets a leading
apostrophe, which spreadsheets show as text. Numbers are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return "'" + value
    return value


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells, index and column names cannot run as formulas."""
    out = df.copy()
    out.index = out.index.map(safe_cell)
    out.columns = out.columns.map(safe_cell)
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(safe_cell)
    return out


def write_csv(df: pd.DataFrame, path: Path, **kwargs: Any) -> None:
    spreadsheet_safe(df).to_csv(path, **kwargs)
