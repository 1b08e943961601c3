"""Evaluating checkpoints as a model trains: accuracy against step.

- :mod:`mmeval.watch.checkpoints`: a trainer's checkpoint folder read while it is written (which are ready,
  what each holds, the digest of its weights).
- :mod:`mmeval.watch.backends`: how a step is answered (transformers with adapters swapped on one base, or a
  vLLM server loading adapters at run time) and its run config.
- :mod:`mmeval.watch.follow`: ``mmeval watch``, the loop over the folder; each step an ordinary run directory.
- :mod:`mmeval.watch.curve`: the points (accuracy, interval, mean probability of the correct option, invalid
  rate, McNemar against the previous step), curve.csv and curve.json.
- :mod:`mmeval.watch.plots`: curve.svg and curve.html.
- :mod:`mmeval.watch.sinks`: TensorBoard, W&B and MLflow, imported only when asked for.
- :mod:`mmeval.watch.callback`: ``MmevalCallback`` for the transformers Trainer (in-process, every K steps).

This room comes after the run engine and the reports, whose rules it uses unchanged.
"""
