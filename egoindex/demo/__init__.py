"""Synthetic head-camera demo corpus with real (espeak-ng) spoken narration."""
