"""Records: benchmarks in the MMAD ``mmad.json`` layout, loaded into validated questions.

:mod:`~mmeval.data.schema` validates records, :mod:`~mmeval.data.loading` resolves them against
the data root into :class:`Question` objects, and :mod:`~mmeval.data.synthetic` builds the bundled
benchmark that needs no download.
"""

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
                                 safe_path,
)

__all__ = ["NORMAL_MARK", "Benchmark", "Question", "Skipped", "load_benchmark", "locate", "question_id", "read_json",
           "read_json_any", "resolve", "safe_path"]
