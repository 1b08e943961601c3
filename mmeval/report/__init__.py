"""Reports: scores, analyses, HTML pages and comparisons, from a run directory's predictions."""
