"""Models: open_clip configs and checkpoints, embedding, pooling, raw-video embedding."""
