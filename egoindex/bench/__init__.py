"""Benchmarks for egoindex stores: EgoMCQ, EPIC-Kitchens-100 multi-instance retrieval, plain R@K and the
analyses child-vision labs run (utterance-frame alignment).

The metrics live in :mod:`egoindex.metrics` (pure numpy, apart from models and stores), so that
every number egoindex reports is computed by one small, tested implementation of the published
definitions (see ``docs/``), and numbers from different checkpoints are comparable. This package
gathers the vectors for them, from a store's tables or from raw videos, and writes the reports;
each module owns one job:

* :mod:`egoindex.bench.result`: :class:`BenchResult`, the report folder and the report's meta
  (which store, model and checkpoint sha256 produced the numbers);
* :mod:`egoindex.bench.store_rows`: store rows and vectors as the benchmarks read them, clip ids;
* :mod:`egoindex.bench.videos`: clip vectors from raw videos, and where the videos are found;
* :mod:`egoindex.bench.mcq`: EgoMCQ (from a file or generated from the store's val videos);
* :mod:`egoindex.bench.epic_files`: EPIC-Kitchens csv readers and the class csv of store clips;
* :mod:`egoindex.bench.mir`: EPIC-style MIR from matrices, EPIC files or the store;
* :mod:`egoindex.bench.charades_files`: Charades(-Ego) csv and class list (read; the demo's written);
* :mod:`egoindex.bench.charades`: zero-shot Charades-Ego mAP (video or segment level);
* :mod:`egoindex.bench.retrieval`: text<->clip R@K on the store's val split;
* :mod:`egoindex.bench.alignment`: utterance-frame alignment against same-count baselines (BabyView);
* :mod:`egoindex.bench.forced_choice`: n-way forced choice of a category word among images (CVCL);
* :mod:`egoindex.bench.compare`: reports side by side.
"""
