# ruff: noqa: E501  (the texts are kept line for line as they were)
"""The text three boost templates had when every run's prompt digest was fixed (see
:func:`mmeval.prompting.render.prompts_digest`).

``knowledge`` (rag), ``expert`` and ``expert_text`` (agent) were hashed with every run before boosts named their
own templates. Their current text now joins the identity of the runs that use their boost
(``Boost.templates``); in the digest every run carries they count with the text below, so that rewording a
boost never moves the hash of a run that does not use it. This file never changes: a template is reworded in
``prompts/``, not here.
"""

FIXED_TEXTS: dict[str, str] = {
    "knowledge": (
        '{#- RAG block: domain knowledge about the product category (empty unless a knowledge source is given) -#}\n'
        'Reference notes about this product, its normal appearance and its known defect types:\n'
        '{{ knowledge }}\n'
    ),
    "expert": (
        "{#- expert block: an anomaly detector's marks on the query, shown as the next image (only with --boost agent) -#}\n"
        '{%- if notation == "bbox" -%}\n'
        'An automatic anomaly detector drew red boxes around the areas it finds suspicious in the next image.\n'
        '{%- elif notation == "contour" -%}\n'
        'An automatic anomaly detector outlined in red the areas it finds suspicious in the next image.\n'
        '{%- elif notation == "highlight" -%}\n'
        'An automatic anomaly detector tinted yellow the areas it finds suspicious in the next image.\n'
        '{%- elif notation == "mask" -%}\n'
        "The next image is an automatic anomaly detector's mask: white where it finds the query image suspicious, black elsewhere.\n"
        '{%- elif notation == "heatmap" -%}\n'
        "The next image is the query with an automatic anomaly detector's heat map over it: red where it finds the image most suspicious, blue where least.\n"
        '{%- else -%}\n'
        'An automatic anomaly detector marked suspicious areas in the next image.\n'
        '{%- endif %} It marks something even on products without defects and can be wrong; make your own judgement.\n'
    ),
    "expert_text": (
        "{#- expert hint in words: an anomaly detector's verdict on the query image (only with --boost agent view=text) -#}\n"
        'An automatic anomaly detector gave the query image an anomaly score of {{ "%.2f"|format(hint.score) }}, where it calls an image defective above {{ "%.2f"|format(hint.threshold) }}: {% if hint.defective %}it suggests a defect, most likely in the {{ hint.region }} of the image{% else %}it suggests no defect (its highest score is in the {{ hint.region }}){% endif %}. It can be wrong; make your own judgement.\n'
    ),
}
