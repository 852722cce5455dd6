"""Supervised fine-tuning of video backbones on labelled videos: ``egoindex finetune``.

A stage beside ingest / train / build: it reads a labelled dataset (:mod:`egoindex.media.labelled`:
folder per class, or UCF101 with its official split files), trains a backbone of
:mod:`egoindex.model.backbones` (:mod:`egoindex.finetune.loop`), scores the test split with
multi-view averaging and writes ``OUT/report/`` (:mod:`egoindex.finetune.report`), and exports
the best checkpoint to ONNX / TorchScript with a parity check (:mod:`egoindex.finetune.export`).
Its checkpoints are :mod:`egoindex.model.video_checkpoint`'s, which ``egoindex classify --model``
and the server load. Nothing is imported here: ``egoindex.finetune.config`` is read by the CLI
at start-up and must not pull torch.
"""
