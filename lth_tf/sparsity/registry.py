"""Which weights of a model can be pruned: a registry from layer type to its prunable weights.

Modelled on tfmot's `PruneRegistry`, but admitting biases, both directions of a `Bidirectional` layer
and the LSTM's recurrent kernels (the study pruned every parameter tensor). Custom layers take part
through tfmot's `PrunableLayer` protocol: whatever their `get_prunable_weights()` returns is prunable.
A registry layer that is also a `PrunableLayer` (lth_tf.sparsity.tfmot_masking makes them so, for tfmot to
prune their biases) keeps the registry's weights and names, and a layer inside tfmot's pruning wrapper is
the layer it wraps. A model holding any other layer with weights is refused, never silently left dense.

Weights are keyed by stable names, `<layer>/<weight>` (`conv3/kernel`, `bilstm1/forward/recurrent_kernel`),
which the masks, the snapshots and the `.npz` files all use.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

from lth_tf.errors import UserError
from lth_tf.keras import keras, tf
from lth_tf.nets.models import EMBEDDING_LAYER, OUTPUT_LAYER

PrunableLayer = tfmot.sparsity.keras.PrunableLayer


def _kernel_and_bias(layer):
    return [("kernel", layer.kernel), ("bias", layer.bias)] if layer.use_bias else [("kernel", layer.kernel)]


def _lstm_weights(layer):
    cell = layer.cell
    weights = [("kernel", cell.kernel), ("recurrent_kernel", cell.recurrent_kernel)]
    return weights + ([("bias", cell.bias)] if cell.use_bias else [])


def _bidirectional_weights(layer):
    out = []
    for direction, sub in (("forward", layer.forward_layer), ("backward", layer.backward_layer)):
        out += [(f"{direction}/{name}", var) for name, var in weights_of(sub)]
    return out


# Layer type -> [(weight name, variable)]. Order matters: subclasses before their bases.
REGISTRY: dict[type, Callable] = {
    keras.layers.Embedding: lambda layer: [("embeddings", layer.embeddings)],
    keras.layers.Conv1D: _kernel_and_bias,
    keras.layers.Dense: _kernel_and_bias,
    keras.layers.LSTM: _lstm_weights,
    keras.layers.Bidirectional: _bidirectional_weights,
}


def weights_of(layer) -> list[tuple[str, tf.Variable]]:
    """The prunable weights of one layer, or raise UserError if the layer is unknown but has weights."""
    if isinstance(layer, PruneLowMagnitude):  # already wrapped by tfmot: the layer it wraps
        return weights_of(layer.layer)
    for layer_type, getter in REGISTRY.items():
        if isinstance(layer, layer_type):
            return getter(layer)
    if isinstance(layer, PrunableLayer):
        named = {id(w): w.name.split("/")[-1].split(":")[0] for w in layer.weights}
        return [(named.get(id(w), f"w{i}"), w) for i, w in enumerate(layer.get_prunable_weights())]
    if layer.weights:
        raise UserError(f"layer {layer.name!r} ({type(layer).__name__}) has weights but is not in the pruning "
                        f"registry: add it to lth_tf.sparsity.registry.REGISTRY or implement tfmot's PrunableLayer")
    return []


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which kinds of tensors are pruned (the study: all of them)."""
    bias: bool = True
    embedding: bool = True
    output: bool = True

    def admits(self, layer_name: str, weight_name: str) -> bool:
        if not self.bias and weight_name.split("/")[-1] == "bias":
            return False
        if not self.embedding and layer_name == EMBEDDING_LAYER:
            return False
        if not self.output and layer_name == OUTPUT_LAYER:
            return False
        return True


def prunable_weights(model: keras.Model, selection: Selection = Selection()) -> dict[str, tf.Variable]:
    """{stable name: variable} of the weights that `selection` prunes, in layer order."""
    out = {}
    for layer in model.layers:
        for weight_name, var in weights_of(layer):
            if selection.admits(layer.name, weight_name):
                out[f"{layer.name}/{weight_name}"] = var
    return out


def all_weights(model: keras.Model) -> dict[str, tf.Variable]:
    """{stable name: variable} of every weight of the model (what a snapshot holds). Prunable weights
    keep their registry names; anything else is named by its layer and TF name."""
    out, seen = {}, set()
    for layer in model.layers:
        for weight_name, var in weights_of(layer):
            out[f"{layer.name}/{weight_name}"] = var
            seen.add(id(var))
    for var in model.weights:
        if id(var) not in seen:
            out[var.name.split(":")[0]] = var
    if len(out) != len({id(v) for v in out.values()}):
        raise AssertionError("two names for one variable")
    return out


class RegistryPruningPolicy(tfmot.sparsity.keras.PruningPolicy):
    """A tfmot pruning policy that admits exactly the layers the registry knows (with weights), and
    refuses a model holding any other weighted layer."""

    def allow_pruning(self, layer) -> bool:
        try:
            return bool(weights_of(layer)) or isinstance(layer, PrunableLayer)
        except UserError:
            return False

    def ensure_model_supports_pruning(self, model) -> None:
        for layer in model.layers:
            weights_of(layer)  # raises UserError naming the layer
