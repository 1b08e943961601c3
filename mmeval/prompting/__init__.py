"""Prompts: questions become neutral messages (text and image parts) that every adapter translates.

:mod:`~mmeval.prompting.messages` holds the message and its converters to each model API's format,
:mod:`~mmeval.prompting.render` the jinja templates, :mod:`~mmeval.prompting.shuffle` the seeded
option order, and :mod:`~mmeval.prompting.variants` the extra questions (rotations, probes).
"""
