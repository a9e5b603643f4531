"""`--masking=tfmot`: the IMP masks held by tensorflow-model-optimization's pruning wrappers.

`TfmotMaskedModel` offers `lth_tf.training.MaskedModel`'s interface (so `train` and the lottery use either),
with tfmot doing the masking:

- The model is wrapped by `tfmot.sparsity.keras.prune_low_magnitude` with the registry's
  `RegistryPruningPolicy`. Every registry layer is first made a tfmot `PrunableLayer` in place (its class
  swapped for a subclass, its variables kept) whose `get_prunable_weights()` returns the registry's weights
  that the `Selection` prunes: biases, the embedding and both directions of a `Bidirectional` LSTM included
  (tfmot's own registry prunes kernels and embeddings only, and refuses `Bidirectional`).
- The schedule, `FixedMasks`, never fires: tfmot's `conditional_mask_update` never re-ranks the weights, so
  its mask variables (`pruning_vars`: (weight, mask, threshold)) keep the IMP masks `set_masks` writes.
- Each training step runs what tfmot runs under `fit` with its `UpdatePruningStep` callback: the wrappers'
  `call` advances `pruning_step`, runs `conditional_mask_update` (a no-op) and `weight_mask_op` (weights =
  weights * mask) before each layer computes, and after Adam's update `weight_mask_op` runs again, so the
  pruned weights are exactly 0 after every step. Adam sees tfmot's raw gradients (pruned positions included,
  unlike the native path's masked gradients): its state differs at pruned positions, but those weights are
  zeroed before anything reads them, so the surviving weights follow the same arithmetic as the native path.
  The padding row of the embedding is zeroed after every step too (the native path keeps it at 0).
- tfmot's wrapper drops Keras masks (it has no `compute_mask`): behind a wrapped `Embedding(mask_zero=True)`
  the LSTMs would read the padding as text. Layers whose output carries a Keras mask are therefore wrapped
  by `MaskForwardingPruneLowMagnitude`, tfmot's wrapper forwarding its layer's mask, before
  `prune_low_magnitude` wraps the rest (it keeps layers already wrapped).
- Weights are read and written by variable (`snapshot`, `restore`), never with `get_weights`/`set_weights`,
  which on a wrapped model include tfmot's masks, thresholds and step counters. Snapshots and masks carry
  the registry's stable names, the same as the native path's: they are the plain model's variables, which
  `strip()` (tfmot's `strip_pruning`) returns without tfmot's variables, for export.

The two paths train to the same weights bit for bit, with --xla too (tests/test_tfmot_masking.py); the cost
differs (benchmarks/tfmot_path.py). Mixed precision is refused: a wrapper computes its layer under its own
dtype policy, not the layer's.
"""
from __future__ import annotations

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

from lth_tf.errors import UserError
from lth_tf.keras import keras, tf
from lth_tf.nets.models import PAD_ID
from lth_tf.sparsity import registry
from lth_tf.training import MaskedModel


class FixedMasks(tfmot.sparsity.keras.PruningSchedule):
    """A pruning schedule that never fires: tfmot never ranks weights by magnitude, so its masks stay what
    was assigned to them (tfmot's own schedules re-rank the whole tensor whenever they fire)."""

    def __call__(self, step):
        return tf.constant(False), tf.constant(0.0, tf.float32)

    def get_config(self):
        return {"class_name": self.__class__.__name__, "config": {}}


class MaskForwardingPruneLowMagnitude(PruneLowMagnitude):
    """tfmot's pruning wrapper, passing on the Keras mask its layer computes (tfmot's returns none)."""

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)


def _selected_weights(self):
    """`get_prunable_weights` of a registry layer made prunable: its registry weights the selection prunes."""
    return [var for name, var in registry.weights_of(self) if self._lth_selection.admits(self.name, name)]


_PRUNABLE_CLASSES: dict[type, type] = {}


def prunable_class(cls: type) -> type:
    """`cls` (a registry layer type) as a tfmot `PrunableLayer`: `Prunable<cls>`, e.g. PrunableBidirectional."""
    if cls not in _PRUNABLE_CLASSES:
        _PRUNABLE_CLASSES[cls] = type(f"Prunable{cls.__name__}", (cls, registry.PrunableLayer),
                                      {"get_prunable_weights": _selected_weights, "__module__": __name__})
    return _PRUNABLE_CLASSES[cls]


def make_prunable(layer: keras.layers.Layer, selection: registry.Selection) -> None:
    """Make a registry layer a tfmot `PrunableLayer` in place: its variables, calls and names are kept."""
    if not isinstance(layer, registry.PrunableLayer):
        object.__setattr__(layer, "__class__", prunable_class(type(layer)))
    object.__setattr__(layer, "_lth_selection", selection)


def _output_carries_mask(layer) -> bool:
    try:
        outputs = layer.output
    except AttributeError:  # called more than once: forward its masks to be safe (harmless without any)
        return True
    return any(getattr(t, "_keras_mask", None) is not None for t in tf.nest.flatten(outputs))


def prune_with_fixed_masks(model: keras.Model, selection: registry.Selection = registry.Selection()) -> keras.Model:
    """`model` wrapped by tfmot's `prune_low_magnitude` (RegistryPruningPolicy, FixedMasks), every mask 1.
    Its layers become PrunableLayers in place: the wrapped model shares every variable with `model`."""
    mixed = [layer for layer in model.layers if layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype]
    if mixed:
        raise UserError(f"--masking=tfmot needs a float32 model, but layer {mixed[0].name!r} computes in "
                        f"{mixed[0].dtype_policy.compute_dtype} (--precision): tfmot's wrappers would run it in "
                        f"their own policy")
    policy = registry.RegistryPruningPolicy()
    policy.ensure_model_supports_pruning(model)
    prunable = [layer for layer in model.layers if registry.weights_of(layer)]
    for layer in prunable:
        make_prunable(layer, selection)
    schedule = FixedMasks()
    forwarding = {id(layer) for layer in prunable if _output_carries_mask(layer)}
    if forwarding:
        model = keras.models.clone_model(
            model, clone_function=lambda layer: MaskForwardingPruneLowMagnitude(layer, pruning_schedule=schedule)
            if id(layer) in forwarding else layer)
    return tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule, pruning_policy=policy)


class TfmotMaskedModel(MaskedModel):
    """`MaskedModel`'s interface with tfmot holding the masks (module docstring). `model` is taken over: its
    layers become tfmot PrunableLayers; `self.model` is the wrapped model."""

    def __init__(self, model: keras.Model, num_classes: int, selection: registry.Selection = registry.Selection()):
        # The stable names (self.prunable, self.weights) and the evaluation come from MaskedModel, taken on the
        # plain model; its mask variables are replaced by tfmot's below.
        super().__init__(model, num_classes, selection)
        self.model = prune_with_fixed_masks(model, selection)
        self.wrappers = [layer for layer in self.model.layers if isinstance(layer, PruneLowMagnitude)]
        tfmot_masks = {id(w): mask for wrapper in self.wrappers for w, mask, _ in wrapper.pruning_vars}
        names = {id(v): n for n, v in self.prunable.items()}
        if set(tfmot_masks) != set(names):
            raise AssertionError(f"tfmot prunes {sorted(names.get(i, '?') for i in tfmot_masks)}, the registry "
                                 f"{sorted(names.values())}")
        self._mask_vars = {name: tfmot_masks[id(var)] for name, var in self.prunable.items()}
        self._pairs = [(self.prunable[n], self._mask_vars[n]) for n in self.prunable]
        self._update_pruning_step = tfmot.sparsity.keras.UpdatePruningStep()
        self._update_pruning_step.set_model(self.model)

    def strip(self) -> keras.Model:
        """tfmot's `strip_pruning`: the plain model, for export. It holds exactly the variables that
        `snapshot` names (registry.all_weights names them the same), none of tfmot's."""
        return tfmot.sparsity.keras.strip_pruning(self.model)

    def apply_masks(self) -> None:
        """tfmot's `weight_mask_op` in every wrapper (weights = weights * mask), and the padding row to 0."""
        for wrapper in self.wrappers:
            wrapper.pruning_obj.weight_mask_op()
        if self._embedding is not None:
            self._embedding.scatter_update(
                tf.IndexedSlices(tf.zeros([1, self._embedding.shape[1]], self._embedding.dtype), [PAD_ID]))

    def make_train_step(self, optimizer: keras.optimizers.Optimizer, totals: tf.Variable, **kwargs):
        """MaskedModel's step on the wrapped model (whose wrappers advance their step and mask the weights
        before computing), with tfmot's update (`_apply_update`). Starts tfmot's step counters as its
        `UpdatePruningStep` callback does at the start of `fit` (the wrappers refuse to train without)."""
        self._update_pruning_step.on_train_begin()
        return super().make_train_step(optimizer, totals, **kwargs)

    def _apply_update(self, optimizer, variables, grads, gradient_masks) -> None:
        optimizer.apply_gradients(zip(grads, variables))  # tfmot's gradients: not masked
        self.apply_masks()  # pruned weights exactly 0 after every step
