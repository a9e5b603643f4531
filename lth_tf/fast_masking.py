"""Masked training that masks the gradients instead of re-masking the weights after every step.

`lth_tf.training.MaskedModel.make_train_step` multiplies every prunable weight by its mask after each
Adam update. For the embedding (50,000 x 100 for the CNN) that is a dense read-multiply-write of the
whole table every step, although a batch touches only a few thousand rows: the embedding's gradient is
an `IndexedSlices` of the looked-up rows.

Masking the gradient instead gives the same trained weights, bit for bit, with Adam (no weight decay,
no gradient clipping), provided the pruned weights are zero and the optimizer's moments are zero at the
pruned positions when training starts, which holds for `lth_tf.training.train` (a fresh Adam every
level, masks applied to the weights by `set_masks`/`restore`): at a pruned position the gradient is
always 0, so m and v stay exactly 0, and Adam's update m_hat / (sqrt(v_hat) + eps) is exactly 0; at a
surviving position nothing changes. For an `IndexedSlices` gradient only the looked-up rows of the mask
are gathered (a [tokens, dim] multiply instead of [vocab, dim]); the padding row's gradient is zeroed
the same way, so it stays zero like PyTorch's `padding_idx`.
"""
from __future__ import annotations

from lth_tf.keras import keras, tf
from lth_tf.nets.models import PAD_ID
from lth_tf.training import MaskedModel


class GradientMaskedModel(MaskedModel):
    """`MaskedModel` whose train step masks gradients (see the module docstring); otherwise identical."""

    def _masked_gradient(self, var, grad, mask):
        is_embedding = self._embedding is not None and var is self._embedding
        if grad is None or (mask is None and not is_embedding):
            return grad
        if isinstance(grad, tf.IndexedSlices):
            values = grad.values
            if mask is not None:
                values = values * tf.gather(mask, grad.indices)
            if is_embedding:
                values = values * tf.cast(tf.not_equal(grad.indices, PAD_ID), values.dtype)[:, None]
            return tf.IndexedSlices(values, grad.indices, grad.dense_shape)
        if mask is not None:
            grad = grad * mask
        if is_embedding:
            keep = tf.tensor_scatter_nd_update(tf.ones([var.shape[0], 1], grad.dtype), [[PAD_ID]],
                                               tf.zeros([1, 1], grad.dtype))
            grad = grad * keep
        return grad

    def make_train_step(self, optimizer: keras.optimizers.Optimizer, totals: tf.Variable):
        """MaskedModel's step with masked gradients (see `_apply_update`)."""
        mask_of = {id(var): mask for var, mask in self._pairs}
        self._gradient_masks = [mask_of.get(id(v)) for v in self.model.trainable_variables]
        self.apply_masks()  # the precondition: pruned weights (and the padding row) start at zero
        return super().make_train_step(optimizer, totals)

    def _apply_update(self, optimizer, variables, grads) -> None:
        grads = [self._masked_gradient(v, g, m) for v, g, m in zip(variables, grads, self._gradient_masks)]
        optimizer.apply_gradients(zip(grads, variables))
