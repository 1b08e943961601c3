"""Human baselines: people answer the questions a model gets, in a browser, and each becomes a run.

- :mod:`~mmeval.human.session`: a panel's folder (``human.json``), its annotators and their tokens;
- :mod:`~mmeval.human.stimuli`: the questions as the models get them (same sample, rendering, option order,
  templates), detection first, and what of them may reach a browser (never the answer);
- :mod:`~mmeval.human.answers`: an annotator's run directory, written by the predictions writer every run uses;
- :mod:`~mmeval.human.panel`: the majority-vote panel, written as one more run;
- :mod:`~mmeval.human.agreement`: Fleiss' kappa, Krippendorff's alpha, pairwise Cohen's kappa;
- :mod:`~mmeval.human.server`: the web page (FastAPI), ``static/human.js`` and ``templates/``.
"""
