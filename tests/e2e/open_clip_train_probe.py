"""Run open_clip_train's own data pipeline over shards and report what it yields (a JSON file).

Run by ``test_open_clip_train_shards.py`` with the python of an environment that has
open_clip_train's pinned ``webdataset==0.2.86`` ahead of egoindex's 1.0.2. It imports neither
egoindex nor the tests: it is what a user's ``python -m open_clip_train.main --train-data ...
--dataset-type webdataset`` does before the first step. The arguments are parsed by
open_clip_train's own parser (``open_clip_train.params.parse_args``), then given the fields
``main.py`` adds (``world_size``, ``rank``, ``distributed``) for one process.

Usage: python open_clip_train_probe.py TRAIN_DATA VAL_DATA OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(train_data: str, val_data: str, out: Path) -> None:
    import open_clip
    import webdataset as wds
    from open_clip_train.data import get_data, get_dataset_size
    from open_clip_train.params import parse_args

    real = open_clip.get_tokenizer("RN50")  # open_clip's CLIP BPE tokenizer, bundled with it
    seen: list[str] = []

    def tokenizer(texts):  # what open_clip_train calls on each sample's decoded ``txt``
        seen.extend([texts] if isinstance(texts, str) else list(texts))
        return real(texts)

    def args_for(num_samples: int | None):
        argv = ["--train-data", train_data, "--val-data", val_data, "--dataset-type", "webdataset",
                "--batch-size", "1", "--workers", "0", "--seed", "0"]  # batch 1: no partial batch dropped
        if num_samples is not None:
            argv += ["--train-num-samples", str(num_samples)]
        args = parse_args(argv)
        args.world_size, args.rank, args.local_rank, args.distributed = 1, 0, 0, False
        return args

    pp = open_clip.image_transform(64, is_train=True), open_clip.image_transform(64, is_train=False)
    report: dict = {"webdataset": wds.__version__, "webdataset_file": wds.__file__,
                    "sizes_count": get_dataset_size(train_data)[0]}

    def epoch(split: str, one_pass: bool = False) -> dict:
        seen.clear()
        info = get_data(args_for(None), pp, epoch=0, tokenizer=tokenizer)[split]
        batches = info.dataloader
        if one_pass:
            # The train epoch is ``with_epoch(num_samples)``: the pipeline repeated and cut at
            # sizes.json's count, which would hide shards holding more or fewer samples. The same
            # pipeline, once over the shard list, shows what the shards really give.
            batches = info.dataloader.pipeline[0].dataset.iterator1()
        n = empty_tokens = 0
        for images, texts in batches:
            n += images.shape[0]
            empty_tokens += int((texts[:, 2] == 0).sum())  # [start, end, 0...]: an empty caption
        return {"num_samples": info.dataloader.num_samples, "yielded": n, "texts": list(seen),
                "empty_token_rows": empty_tokens}

    report["train"] = epoch("train")  # the epoch open_clip_train runs: sizes.json's count
    report["train_all"] = epoch("train", one_pass=True)  # one pass over the train shards, uncut
    report["val"] = epoch("val")  # val is read once, to its end
    out.write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
