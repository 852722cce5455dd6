"""Benchmarks for egoindex stores: EgoMCQ, EPIC-Kitchens-100 multi-instance retrieval and plain R@K.

Metrics live here, apart from models and stores, so that every number egoindex reports is computed
by one small, tested implementation of the published definitions (see REFERENCE.md section 1), and
so that numbers from different checkpoints are comparable.
"""
