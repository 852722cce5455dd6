"""Export egoindex embeddings in the exact file layouts of the Ego4D episodic-memory baselines.

Why: people who want to compare a model on Ego4D NLQ (VSLNet) or Moment Queries (VSGN) should be
able to point the *unchanged* official training code at our output.  That only works if the
feature time grid, the file names, the tensor dtypes and the dataset JSON match what that code
reads, byte for byte where it matters.

The modules, in the order the data flows through them:

* :mod:`~egoindex.export.nlq`, :mod:`~egoindex.export.moments` -- read and validate Ego4D NLQ and
  moments annotation files (:mod:`~egoindex.export.fields`: the field readers that name a bad path);
* :mod:`~egoindex.export.backend` -- what an export works from (a store, or a checkpoint + videos)
  and the videos it can export;
* :mod:`~egoindex.export.windows`, :mod:`~egoindex.export.grid` -- the official feature time grid
  (30 fps, 32-frame windows, 16-frame stride, back-padded last window), pooling onto it, the
  baselines' index arithmetic, and the rule for when store frames are dense enough;
* :mod:`~egoindex.export.rows` -- feature rows per video, pooled from the store's frames or from the
  video decoded again (:mod:`egoindex.model.video`);
* :mod:`~egoindex.export.vslnet`, :mod:`~egoindex.export.vsgn` -- the two layouts
  (:mod:`~egoindex.export.feature_files`: the ``.pt`` files both read);
* :mod:`~egoindex.export.run` -- the two exports (``egoindex export nlq|mq``) joining the above;
* :mod:`~egoindex.export.demo_annotations` -- Ego4D-format annotation files for the demo corpus.
* :mod:`~egoindex.export.embeddings` -- a store's vectors as clip-retrieval's embeddings folder
  (:mod:`~egoindex.export.clip_retrieval`) and a TensorBoard projector folder
  (:mod:`~egoindex.export.projector`): ``egoindex export embeddings``.
"""
