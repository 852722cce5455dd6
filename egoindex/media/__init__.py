"""Reading raw media: discovering videos, decoding frames, sampling frames at times, transcribing speech."""
