"""Benchmarks built from a team's own labelled images, in the MMAD ``mmad.json`` format.

``mmeval build mvtec|visa|folders`` reads a folder of images in one of three layouts
(:mod:`.sources`), asks every question its labels, masks and names answer (:mod:`.questions`: Anomaly
Detection, Defect Classification, Defect Localization, Object Classification), the descriptive ones
from a knowledge file (:mod:`.knowledge`) or from a model that writes them (:mod:`.writer`, through the
OpenAI-compatible adapter), and writes the benchmark with a README (:mod:`.builder`, :mod:`.readme`).

This room comes after the model adapters, whose OpenAI-compatible family writes questions; the
command line runs the validity check (``mmeval data check``) on what was built.
"""

from mmeval.builders.builder import build
from mmeval.builders.options import BuildOptions, BuildResult
from mmeval.builders.sources import Source, scan

__all__ = ["BuildOptions", "BuildResult", "Source", "build", "scan"]
