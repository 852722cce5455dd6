"""Export egoindex embeddings in the exact file layouts of the Ego4D episodic-memory baselines.

Why: people who want to compare a model on Ego4D NLQ (VSLNet) or Moment Queries (VSGN) should be
able to point the *unchanged* official training code at our output.  That only works if the
feature time grid, the file names, the tensor dtypes and the dataset JSON match what that code
reads, byte for byte where it matters.

* :mod:`egoindex.export.windows` -- the official feature time grid (30 fps, 32-frame windows,
  16-frame stride, back-padded last window), pooling of per-frame embeddings onto it, and exact
  re-implementations of the index arithmetic the baselines use (``time_to_index``, VSGN slicing).
* :mod:`egoindex.export.ego4d` -- writers for the VSLNet and VSGN layouts, a validating reader for
  Ego4D NLQ annotation files, the moments -> ``clip_annotations.json`` conversion, and an
  Ego4D-format NLQ annotation file built from the demo corpus ground truth.
* :mod:`egoindex.export.features` -- frame embeddings per video, from the store when its frames
  are dense enough for the feature grid or else decoded from the videos, and the two exports.
"""
