"""Training: LLaRA's unsupervised pretext adaptation (EBAE + EBAR) and contrastive fine-tuning, with LoRA."""

from .pretext import bow_targets, build_pretext_batch, pretext_forward, pretext_loss

__all__ = ["bow_targets", "build_pretext_batch", "pretext_forward", "pretext_loss"]
