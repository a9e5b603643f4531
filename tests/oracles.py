"""Reference implementations that production code is tested against (never used by lth_tf itself)."""
from __future__ import annotations

from lth_tf.training import MaskedModel


class RemaskingModel(MaskedModel):
    """The first design of masked training: the optimizer updates every weight, then every prunable weight
    is multiplied by its mask (and the padding row zeroed) inside the same step. Production masks the
    gradients instead; the two must give bit-identical weights."""

    def _apply_update(self, optimizer, variables, grads, gradient_masks) -> None:
        optimizer.apply_gradients(zip(grads, variables))
        self.apply_masks()
