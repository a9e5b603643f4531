"""--masking=tfmot: tfmot's pruning wrappers hold the IMP masks, and train exactly as the native path does."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

from helpers import synthetic_batches
from lth_tf.config import ModelConfig, TrainConfig
from lth_tf.errors import UserError
from lth_tf.keras import keras, tf
from lth_tf.nets.models import PAD_ID, build_model
from lth_tf.sparsity import masks as masks_lib
from lth_tf.sparsity import registry
from lth_tf.sparsity.pruning import prune
from lth_tf.sparsity.tfmot_masking import PruneLowMagnitude, TfmotMaskedModel
from lth_tf.training import MaskedModel, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"cnn": ModelConfig(model="cnn", embedding_dim=8, filters=4),
        "lstm": ModelConfig(model="lstm", embedding_dim=8, hidden=8)}
PATHS = {"native": MaskedModel, "tfmot": TfmotMaskedModel}


def _model(kind, masking, seed=0):
    """As Experiment.build makes it: FastLSTM, stateful dropout."""
    keras.backend.clear_session()
    return PATHS[masking](build_model(TINY[kind], 300, 2, seed=seed, fast_lstm=True, stateful_dropout=True), 2)


def _tiny_imp(kind, masking, levels=2):
    """Level 0 dense, then `levels` levels each pruning 20% of every tensor's survivors and rewinding to θ0;
    one epoch of 4 steps per level. What each level ends with."""
    mm = _model(kind, masking)
    theta0 = mm.snapshot()
    batches = synthetic_batches(n=128, length=20)  # texts of 10 to 20 tokens: padding the LSTM must skip
    masks = masks_lib.dense_masks(mm.shapes)
    out = []
    for level in range(levels + 1):
        if level:
            masks = prune(masks, mm.prunable_values(), 0.2, "local")
        mm.set_masks(masks)
        mm.restore(theta0)
        result = train(mm, batches, batches, TrainConfig(epochs=1, patience=0, learning_rate=0.01), seed=level,
                       progress=False, epoch_seeded=True)
        out.append({"masks": masks, "trained_masks": mm.masks(), "weights": mm.snapshot(),
                    "history": result.history, "test": mm.evaluate(batches())})
    return mm, out


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_tiny_imp_is_identical_both_ways(kind):
    _, native = _tiny_imp(kind, "native")
    mm, tfmot_levels = _tiny_imp(kind, "tfmot")
    for level, (a, b) in enumerate(zip(native, tfmot_levels)):
        assert list(a["weights"]) == list(b["weights"]) and list(a["masks"]) == list(b["masks"])
        for name in a["masks"]:
            assert np.array_equal(a["masks"][name], b["masks"][name]), (level, name)
            assert np.array_equal(b["trained_masks"][name], b["masks"][name]), (level, name)  # never re-ranked
            assert np.all(b["weights"][name][~b["masks"][name]] == 0.0), (level, name)
        for name in a["weights"]:  # bit for bit, not within a tolerance
            assert np.array_equal(a["weights"][name], b["weights"][name]), (level, name)
        assert not np.any(b["weights"]["embedding/embeddings"][PAD_ID])
        strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
        assert strip(a["history"]) == strip(b["history"]) and a["test"] == b["test"], level
    sparsity = masks_lib.sparsity_report(tfmot_levels[2]["masks"])["overall"]["sparsity"]
    assert sparsity == pytest.approx(1 - 0.8 ** 2, abs=0.01)
    # the masks live in tfmot's own mask variables
    tfmot_masks = {id(w): m for wr in mm.wrappers for w, m, _ in wr.pruning_vars}
    for name, var in mm.prunable.items():
        assert np.array_equal(tfmot_masks[id(var)].numpy().astype(bool), tfmot_levels[2]["masks"][name])


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_pruned_weights_are_zero_after_every_step(kind):
    mm = _model(kind, "tfmot")
    rng = np.random.default_rng(0)
    masks = {n: rng.random(s) >= 0.3 for n, s in mm.shapes.items()}
    mm.set_masks(masks)
    step = mm.make_train_step(keras.optimizers.Adam(0.01), tf.Variable(tf.zeros([3]), trainable=False))
    for i, (ids, labels) in enumerate(synthetic_batches(n=128, length=20)(0)):
        step(ids, labels)
        values = mm.prunable_values()
        for name, mask in masks.items():
            assert np.all(values[name][~mask] == 0.0), (i, name)
        assert not np.any(values["embedding/embeddings"][PAD_ID])
    assert all(int(wr.pruning_step.numpy()) == 4 for wr in mm.wrappers)  # tfmot's step counter ran
    assert all(np.array_equal(mm.masks()[n], masks[n]) for n in masks)


def test_identical_under_xla_too():
    """--xla (the CNN): the same weights both ways (with the runs' stateful dropout; TF1-style seeded dropout
    draws other bits under XLA in the two graphs)."""
    weights = {}
    for masking in PATHS:
        mm = _model("cnn", masking)
        rng = np.random.default_rng(0)
        mm.set_masks({n: rng.random(s) >= 0.3 for n, s in mm.shapes.items()})
        keras.utils.set_random_seed(1)
        step = mm.make_train_step(keras.optimizers.Adam(0.01), tf.Variable(tf.zeros([3])), jit_compile=True)
        for ids, labels in synthetic_batches(n=64, length=20)(0):
            step(ids, labels)
        weights[masking] = mm.snapshot()
    assert all(np.array_equal(weights["native"][n], weights["tfmot"][n]) for n in weights["native"])


def test_registry_names_a_prunable_registry_layer_as_the_registry_does():
    class Scale(keras.layers.Layer, tfmot.sparsity.keras.PrunableLayer):  # not a registry type
        def build(self, input_shape):
            self.w = self.add_weight("w", shape=input_shape[-1:], initializer="ones")

        def call(self, x):
            return x * self.w

        def get_prunable_weights(self):
            return [self.w]

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(Scale(name="scale")(inputs)))
    before = list(registry.prunable_weights(model))
    TfmotMaskedModel(model, 2)  # makes the Dense a PrunableLayer (PrunableDense), wraps both
    assert before == ["scale/w", "d/kernel", "d/bias"] == list(registry.prunable_weights(model))


def test_names_snapshots_strip_and_rewinding_by_variable():
    for kind in ("cnn", "lstm"):
        native, mm = _model(kind, "native"), _model(kind, "tfmot")
        assert list(mm.snapshot()) == list(native.snapshot()) and mm.shapes == native.shapes
        assert "bilstm1/backward/recurrent_kernel" in mm.prunable or kind == "cnn"
        stripped = mm.strip()
        assert not any(isinstance(layer, PruneLowMagnitude) for layer in stripped.layers)
        assert {n: id(v) for n, v in registry.all_weights(stripped).items()} == \
               {n: id(v) for n, v in mm.weights.items()}
        # every registry layer is a PrunableLayer: tfmot prunes biases, the embedding, both LSTM directions
        assert all(isinstance(wr.layer, tfmot.sparsity.keras.PrunableLayer) for wr in mm.wrappers)
    masks = {n: np.arange(np.prod(s)).reshape(s) % 3 > 0 for n, s in mm.shapes.items()}
    mm.set_masks(masks)
    theta0 = {n: np.ones_like(v) for n, v in mm.snapshot().items()}
    mm.restore(theta0)  # by variable: tfmot's masks untouched, the survivors 1, the pruned 0
    for name, mask in masks.items():
        expected = mask.astype(np.float32)
        if name == "embedding/embeddings":
            expected[PAD_ID] = 0.0  # the padding row stays 0, as in the native path
        assert np.array_equal(mm.masks()[name], mask)
        assert np.array_equal(mm.prunable[name].numpy(), expected), name
    # what restore avoids: get_weights() of the wrapped model also holds tfmot's masks and step counters
    assert len(mm.model.get_weights()) > len(theta0)


def test_mixed_precision_is_refused():
    model = build_model(TINY["cnn"], 300, 2, seed=0, precision="bfloat16")
    with pytest.raises(UserError, match="masking=tfmot"):
        TfmotMaskedModel(model, 2)


def _cli(out, masking):
    cmd = [sys.executable, "-m", "lth_tf.main", "--dataset=imdb_sample", "--model=cnn", "--vocab_size=300",
           "--embedding_dim=8", "--filters=4", "--levels=2", "--epochs=1", f"--masking={masking}",
           "--progress=false", f"--output_dir={out}", f"--cache_dir={out}/cache"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (name,) = [d for d in os.listdir(out) if d.startswith("cnn_")]
    with open(os.path.join(out, name, "results.json")) as f:
        records = json.load(f)["records"]
    with open(os.path.join(out, name, "config.json")) as f:
        config = json.load(f)
    return {(r["branch"], r["level"]): r for r in records}, config, os.path.join(out, name)


def test_cli_end_to_end_with_tfmot_matches_native(tmp_path):
    tfmot_run, config, run_dir = _cli(tmp_path / "tfmot", "tfmot")
    assert config["identity"]["train.masking"] == "tfmot"
    for level in range(3):
        ticket = tfmot_run[("ticket", level)]
        assert ticket["sparsity"] == pytest.approx(1 - 0.8 ** level, abs=0.01)
        assert ticket["sparsity_by_tensor"]["conv3/kernel"] == pytest.approx(1 - 0.8 ** level, abs=0.01)
        d = os.path.join(run_dir, "r0", f"level_{level:02d}", "ticket")
        with np.load(os.path.join(d, "weights.npz")) as w, np.load(os.path.join(d, "mask.npz")) as m:
            assert all(np.all(w[n][~m[n]] == 0) for n in m.files)
    native_run, native_config, native_dir = _cli(tmp_path / "native", "native")
    assert "train.masking" not in native_config["identity"]  # the default: existing runs keep their names
    assert os.path.basename(native_dir) != os.path.basename(run_dir)  # tfmot is another run
    assert set(native_run) == set(tfmot_run)
    for key, r in native_run.items():
        for metric in ("sparsity", "valid_loss", "valid_accuracy", "test_loss", "test_accuracy"):
            assert r[metric] == tfmot_run[key][metric], (key, metric)
