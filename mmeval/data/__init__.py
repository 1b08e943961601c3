"""Records: benchmarks in the MMAD ``mmad.json`` layout, loaded into validated questions.

:mod:`~mmeval.data.schema` validates records, :mod:`~mmeval.data.loading` resolves them against
the data root into :class:`Question` objects (:mod:`~mmeval.data.confine` keeps every path of every data
source under its root), and :mod:`~mmeval.data.synthetic` builds the bundled benchmark that needs no
download.
"""

from mmeval.data.confine import safe_path
from mmeval.data.loading import (
                                 NORMAL_MARK,
                                 Benchmark,
                                 Question,
                                 Skipped,
                                 load_benchmark,
                                 locate,
                                 question_id,
                                 read_json,
                                 read_json_any,
                                 resolve,
)

__all__ = ["NORMAL_MARK", "Benchmark", "Question", "Skipped", "load_benchmark", "locate", "question_id", "read_json",
           "read_json_any", "resolve", "safe_path"]
