"""``python -m egoindex.train`` and ``torchrun -m egoindex.train SHARDS RUN ...`` == ``egoindex train``."""

from egoindex.train.loop import main

if __name__ == "__main__":
    main()
