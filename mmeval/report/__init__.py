"""Reports: scores, analyses, HTML pages and comparisons, from a run directory's predictions.

- :mod:`mmeval.report.run_report`: a run's report files (scores, analysis.json, ci.csv, answers, report.html).
- :mod:`mmeval.report.run_page`: what a run's report.html shows.
- :mod:`mmeval.report.compare`: runs side by side with references; compare.csv/json/html.
- :mod:`mmeval.report.score_files`: scores.csv, scores.json (typed, versioned) and heatmap.svg.
- :mod:`mmeval.report.analysis`: every analysis of a run, returned as a typed :class:`~mmeval.report.analysis.Analysis`.
- :mod:`mmeval.report.figures`: heatmaps and bars against the human expert as SVG, thumbnails.
- :mod:`mmeval.report.colours`: the colour scales (fixed 0-100 accuracy, diverging) and the series palette.
- :mod:`mmeval.report.answer_rows`: rows of the answer tables (wrong answers, regressions, fixes).
- :mod:`mmeval.report.html`: renders the pages (jinja2 templates in ``templates/``).
- :mod:`mmeval.report.official`: the official MMAD answers files, read and written.
- :mod:`mmeval.report.references`: the human baseline and published MMAD results.

The scores themselves are computed by :mod:`mmeval.scoring`.
"""
