"""Export: a fake run directory of tiny CNN/LSTM tickets -> SavedModel (raw text in, probabilities out) and
TFLite float/int8, checked against the Keras model; ticket choice on validation accuracy; bad inputs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lth_tf import atomic, export, report, rundir
from lth_tf.config import DataConfig, ModelConfig, RunConfig
from lth_tf.data import EncodedSplit, PreparedData, tokenize
from lth_tf.errors import UserError
from lth_tf.export import tflite as export_tflite
from lth_tf.keras import tf
from lth_tf.sparsity.masks import dense_masks
from lth_tf.nets.models import build_model, probabilities
from lth_tf.sparsity.pruning import prune_local
from lth_tf.training import MaskedModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEGACY_RUN = os.path.join(ROOT, "tests", "fixtures", "legacy_run_v1", "cnn_imdb_sample_87bc0136d1")
WORDS = [f"w{i}" for i in range(150)] + ["good", "bad", "movie", ",", ".", "!"]
VOCAB = ["<pad>", "<unk>"] + WORDS
CLASSES = ["neg", "pos"]
MODELS = {
    # max_len=12 for the CNN: the SavedModel keeps the first 12 tokens, the TFLite input is [1, 12].
    "cnn": (ModelConfig(model="cnn", embedding_dim=8, filters=4, filter_sizes="2,3"), 12),
    "lstm": (ModelConfig(model="lstm", embedding_dim=8, hidden=4, lstm_layers=1), 0),
}


def make_texts(n, seed):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        k = int(rng.integers(1, 20))
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), size=k)]
        if rng.random() < 0.5:
            words.insert(int(rng.integers(0, k)), "unseen")  # out of vocabulary -> <unk>
        texts.append(" ".join(words).replace(" ,", ",").replace(" .", "."))
        labels.append(int(rng.integers(0, 2)))
    return texts, np.asarray(labels, np.int32)


def encode(texts, max_len=0):
    index = {t: i for i, t in enumerate(VOCAB)}
    rows = [[index.get(t, 1) for t in tokenize(x)] for x in texts]
    return [r[:max_len] if max_len else r for r in rows]


def split_of(texts, labels):
    rows = encode(texts)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    flat = np.asarray([i for r in rows for i in r], np.int32)
    return EncodedSplit(flat, offsets, labels)


def padded(rows):
    out = np.zeros((len(rows), max(1, max(len(r) for r in rows))), np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def write_task(run, level, weights, masks, valid_acc):
    task = rundir.Task(0, level, "ticket")
    run.write_weights(task, weights)
    run.write_masks(task, masks)
    sparsity = 1 - sum(int(m.sum()) for m in masks.values()) / sum(m.size for m in masks.values())
    metrics = {"replicate": 0, "branch": "ticket", "level": level, "sparsity": sparsity,
               "sparsity_without_embedding": sparsity, "valid_accuracy": valid_acc, "test_accuracy": 0.5,
               "sparsity_by_tensor": {}}
    run.write_metrics(task, metrics)
    return metrics


def make_run(root, kind):
    """A run directory written by lth_tf.rundir: dense level 0 and two pruned levels (50%, 75%) whose weights
    are random (biases included, so padding mistakes would show), masked weights exactly zero."""
    model_cfg, max_len = MODELS[kind]
    cfg = RunConfig(data=DataConfig(dataset="imdb_sample", max_len=max_len), model=model_cfg)
    train_texts, train_labels = make_texts(8, seed=2)
    test_texts, test_labels = make_texts(24, seed=3)
    data = PreparedData(vocab=list(VOCAB), class_names=CLASSES, train=split_of(train_texts, train_labels),
                        valid=split_of(train_texts, train_labels), test=split_of(test_texts, test_labels))
    fingerprint = rundir.data_fingerprint(data)
    run = rundir.RunDir.locate(cfg, root, fingerprint)
    run.create()
    run.write_config(cfg, fingerprint)
    run.write_data(data, fingerprint)
    mm = MaskedModel(build_model(model_cfg, len(VOCAB), 2, seed=0), 2)
    rng = np.random.default_rng(1)
    for var in mm.weights.values():
        var.assign(rng.normal(0, 0.4, var.shape).astype(np.float32))
    masks = dense_masks(mm.shapes)
    records = []
    for level, valid_acc in ((0, 0.70), (1, 0.80), (2, 0.75)):
        if level:
            masks = prune_local(masks, mm.prunable_values(), 0.5)
        mm.set_masks(masks)
        records.append(write_task(run, level, mm.snapshot(), masks, valid_acc))
    atomic.write_json(run.file(rundir.RESULTS_JSON), {"settings": cfg.to_dict(), "records": records})
    return run.path, data, test_texts


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    run_dir, data, texts = make_run(str(root), kind)
    logs = []
    report = export.export_run(run_dir, str(root / "exports"), data=data, log=logs.append, latency_runs=5,
                               dense=(kind == "cnn"))  # the LSTM's dense conversions would only cost time
    task = export.load_task(export.load_run(run_dir), 0, 1, "ticket")  # the exported ticket, in Keras
    return kind, run_dir, data, texts, report, "\n".join(logs), task


def test_layout_and_metadata(exported):
    kind, run_dir, _, _, report, logs, _ = exported
    path = report["path"]
    assert os.path.basename(path) == f"{os.path.basename(run_dir)}_r0_L01_ticket"  # best validation accuracy
    assert not [e for e in os.listdir(os.path.dirname(path)) if e.startswith((".tmp-", ".old-"))]
    expected = {"saved_model", "metadata.json", "export_report.json", "export_report.md", "vocab.txt",
                "ticket_float.tflite", "ticket_int8.tflite"}
    if kind == "cnn":
        expected |= {"dense", "dense_float.tflite", "dense_int8.tflite"}
    assert set(os.listdir(path)) == expected
    meta = atomic.read_json(os.path.join(path, "metadata.json"))
    assert (meta["level"], meta["replicate"], meta["branch"], meta["model"]) == (1, 0, "ticket", kind)
    assert meta["class_names"] == CLASSES and meta["valid_accuracy"] == 0.8
    assert 0.45 < meta["sparsity"]["overall"] < 0.55
    assert set(meta["sparsity"]["by_tensor"]) >= {"embedding/embeddings", "output/kernel"}
    assert meta["run_hash"] in run_dir and meta["input"]["tflite"]["length"] == (12 if kind == "cnn" else 256)
    assert "| ticket | TFLite float32 |" in logs and os.path.exists(os.path.join(path, "export_report.json"))


def test_saved_model_takes_raw_text(exported):
    kind, run_dir, data, texts, report, _, task = exported
    loaded = tf.saved_model.load(os.path.join(report["path"], "saved_model"))
    assert set(loaded.signatures) == {"serving_default", "token_ids"}
    out = loaded.signatures["serving_default"](texts=tf.constant(texts + ["", "unseen!"]))
    probs = out["probabilities"].numpy()
    assert probs.shape == (len(texts) + 2, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    # The same texts encoded in Python (tokenize + vocab.txt, --max_len applied) through Keras.
    max_len = MODELS[kind][1]
    ids = padded(encode(texts + ["", "unseen!"], max_len))
    want = probabilities(task.model(ids, training=False), 2).numpy()
    np.testing.assert_allclose(probs, want, atol=1e-5)
    assert np.array_equal(out["class_ids"].numpy(), want.argmax(-1))
    by_ids = loaded.signatures["token_ids"](token_ids=tf.constant(ids))["probabilities"].numpy()
    np.testing.assert_allclose(by_ids, want, atol=1e-5)


def test_saved_model_variables_are_the_pruned_weights(exported):
    _, run_dir, _, _, report, _, task = exported
    prefix = os.path.join(report["path"], "saved_model", "variables", "variables")
    names = [n for n, _ in tf.train.list_variables(prefix) if n != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert not [n for n in names if "mask" in n.lower() or "prune" in n.lower()]
    assert len(names) == len(task.weights)  # nothing but the network's weights
    reader = tf.train.load_checkpoint(prefix)
    pruned = 0
    for name, mask in task.masks.items():
        value = reader.get_tensor(f"named_weights/{name.replace('/', '.S')}/.ATTRIBUTES/VARIABLE_VALUE")
        assert np.all(value[~mask] == 0.0)
        np.testing.assert_array_equal(value, task.weights[name])
        pruned += int((~mask).sum())
    assert pruned > 0.45 * sum(m.size for m in task.masks.values())


def test_tflite_float_agrees_int8_close(exported):
    kind, run_dir, data, _, report, _, task = exported
    lite = report["tflite"]
    roles = ("dense", "ticket") if kind == "cnn" else ("ticket",)
    for role in roles:
        f, q = lite[f"{role}/float"], lite[f"{role}/int8"]
        assert f["examples"] == len(data.test) and f["agreement"] == 1.0, f
        assert f["max_abs_probability_diff"] < 1e-4
        assert q["agreement"] >= 0.75, q  # dynamic-range int8: small disagreement allowed
        assert q["resolver"] in (export.RESOLVER_DEFAULT, export.RESOLVER_FALLBACK)
        assert f["latency_ms_median"] > 0 and q["accuracy"] is not None
        assert f["flex_or_custom"] == []
        if kind == "lstm":
            assert f["fused_lstm"] and q["fused_lstm"] and not f["while_loop"], f["ops"]
        sizes = report["sizes"]
        assert sizes[f"{role}/int8"]["raw_bytes"] < sizes[f"{role}/float"]["raw_bytes"]  # the embedding is int8
        assert f["embedding_bytes"]["dtype"] == "float32" and q["embedding_bytes"]["dtype"] == "int8"
    if kind == "cnn":
        s = report["sizes"]
        assert s["ticket/float"]["gzip_bytes"] < s["dense/float"]["gzip_bytes"]  # zeros compress
        assert report["ratios_ticket_vs_dense"]["float"]["gzip"] < 1.0


def test_tflite_contract_one_text_right_padded(exported):
    """Run a converted file ourselves: ids [1, L] right-padded; the prediction is the Keras model's on the
    text alone, and does not depend on earlier invokes once variables are reset."""
    kind, run_dir, data, _, report, _, task = exported
    length = report["tflite_length"]
    with open(os.path.join(report["path"], "ticket_float.tflite"), "rb") as f:
        runner = export.LiteRunner(f.read())
    assert runner.length == length and tuple(runner.input["shape"]) == (1, length)
    for i in range(4):
        row = data.test.token_ids[data.test.offsets[i]:data.test.offsets[i + 1]][:length]
        ids = np.zeros(length, np.int32)
        ids[:len(row)] = row
        want = probabilities(task.model(np.asarray([row if len(row) else [0]], np.int32)), 2).numpy()[0]
        np.testing.assert_allclose(runner.predict(ids), want, atol=1e-5)
    if kind == "lstm":  # why predict() resets: without it, a text starts from the previous text's LSTM state
        first = runner.predict(ids)
        runner.predict(np.roll(ids, 1))
        runner.it.set_tensor(runner.input["index"], ids.reshape(1, -1))
        runner.it.invoke()
        assert not np.array_equal(runner.it.get_tensor(runner.output["index"])[0], first)
        assert np.array_equal(runner.predict(ids), first)


def test_choose_level_on_validation(tmp_path):
    run = rundir.RunDir(os.path.join(tmp_path, "run"))
    masks = {"x": np.ones(4, bool)}
    for level, acc in ((0, 0.9), (1, 0.7), (2, 0.8), (3, 0.8)):
        write_task(run, level, {"x": np.ones(4, np.float32)}, masks, acc)
    assert export.choose_level(run) == 3  # best pruned level on validation, ties to the sparser
    os.remove(run.task_file(rundir.Task(0, 3, "ticket"), rundir.METRICS))  # unfinished: ignored
    assert export.choose_level(run) == 2
    for level in (1, 2):
        os.remove(run.task_file(rundir.Task(0, level, "ticket"), rundir.METRICS))
    assert export.choose_level(run) == 0  # no pruned level finished: the dense one
    with pytest.raises(UserError, match="replicate"):
        export.choose_level(run, replicate=1)
    os.remove(run.task_file(rundir.Task(0, 0, "ticket"), rundir.METRICS))
    with pytest.raises(UserError, match="no finished task"):
        export.choose_level(run)


def test_bad_inputs(tmp_path):
    run_dir, _, _ = make_run(str(tmp_path), "cnn")
    out = str(tmp_path / "exports")
    with pytest.raises(UserError, match="no such directory"):
        export.export_run(str(tmp_path / "missing"), out)
    with pytest.raises(UserError, match="finished levels: 0, 1, 2"):
        export.export_run(run_dir, out, level=7, tflite=False)
    with pytest.raises(UserError, match="branch"):
        export.export_run(run_dir, out, branch="nope")
    # A weight that its mask prunes but that is not zero: the weights do not belong to the mask.
    run, level_2 = rundir.RunDir(run_dir), rundir.Task(0, 2, "ticket")
    weights, masks = run.read_weights(level_2), run.read_masks(level_2)
    weights["conv2/kernel"][~masks["conv2/kernel"]] = 0.5
    run.write_weights(level_2, weights)
    with pytest.raises(UserError, match="not zero"):
        export.export_run(run_dir, out, level=2, tflite=False)
    os.remove(run.task_file(rundir.Task(0, 1, "ticket"), rundir.MASK))  # a pruned level's mask: required
    with pytest.raises(UserError, match=r"level_01/ticket/mask\.npz: missing \(the mask"):
        export.export_run(run_dir, out, level=1, tflite=False)
    os.remove(run.file(rundir.VOCAB))
    with pytest.raises(UserError, match="vocab.txt"):
        export.export_run(run_dir, out)
    assert not os.path.exists(out) or not os.listdir(out)  # nothing half-written


def test_failed_export_leaves_nothing_and_reexport_replaces(tmp_path, monkeypatch):
    run_dir, data, _ = make_run(str(tmp_path), "cnn")
    out = str(tmp_path / "exports")
    report = export.export_run(run_dir, out, data=data, tflite=False, log=lambda m: None)
    stamp = atomic.read_json(os.path.join(report["path"], "metadata.json"))["created"]

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(export, "convert_tflite", boom)
    with pytest.raises(RuntimeError, match="killed"):
        export.export_run(run_dir, out, data=data, log=lambda m: None)
    assert os.listdir(out) == [os.path.basename(report["path"])]  # the old export intact, no temporaries
    assert atomic.read_json(os.path.join(report["path"], "metadata.json"))["created"] == stamp
    assert not os.path.exists(os.path.join(report["path"], "ticket_float.tflite"))
    monkeypatch.undo()
    again = export.export_run(run_dir, out, data=data, level=0, tflite=False, max_examples=4, log=lambda m: None)
    assert again["metadata"]["level"] == 0 and "dense/saved_model" not in again["sizes"]
    assert sorted(os.listdir(out)) == sorted([os.path.basename(report["path"]), os.path.basename(again["path"])])


def test_cli_errors_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lth_tf.export", f"--run_dir={tmp_path}/nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --run_dir=")


def test_cli_help_lists_flags_and_main_defines_export_dir_too():
    proc = subprocess.run([sys.executable, "-m", "lth_tf.export", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "python -m lth_tf.export " in proc.stdout
    for flag in ("--run_dir", "--level", "--replicate", "--branch", "--export_dir", "--[no]tflite", "--[no]no_tflite",
                 "--[no]dense", "--tflite_length", "--max_examples", "--latency_runs", "--num_threads"):
        assert flag in proc.stdout, flag
    # lth_tf.main (--export, --export_dir) and the export command in one process: no duplicate flag.
    code = ("import lth_tf.main\nfrom lth_tf.export import __main__ as m\nm.define_flags()\n"
            "print(all(n in m.FLAGS for n in ('run_dir', 'export_dir', 'level', 'tflite')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr


def test_legacy_run_ticket_loads_reinit_without_mask_is_one_line_error():
    """A run made before the redesign: its ticket exports; its reinit tasks kept no mask.npz."""
    run = export.load_run(LEGACY_RUN)
    level = export.choose_level(run.dir)
    assert level == report.choose_level(run.dir.finished_metrics(), 0)
    task = export.load_task(run, 0, level, "ticket")
    assert task.task == rundir.Task(0, level, "ticket") and task.masks and task.metrics["level"] == level
    with pytest.raises(UserError, match=r"reinit/mask\.npz: missing") as e:
        export.load_task(run, 0, 1, "reinit")
    assert "\n" not in str(e.value)


def test_xnnpack_failure_falls_back_to_builtin_resolver(exported, monkeypatch):
    """A model that the default (XNNPack) resolver cannot run is reopened without default delegates."""
    _, _, _, _, report, _, _ = exported
    interpreter_cls, resolvers, package = export_tflite._litert()

    class XNNPackFails(interpreter_cls):
        def __init__(self, *args, experimental_op_resolver_type=None, **kwargs):
            if experimental_op_resolver_type is None:
                raise RuntimeError("Failed to apply XNNPACK delegate")
            super().__init__(*args, experimental_op_resolver_type=experimental_op_resolver_type, **kwargs)

    monkeypatch.setattr(export_tflite, "_litert", lambda: (XNNPackFails, resolvers, package))
    with open(os.path.join(report["path"], "ticket_int8.tflite"), "rb") as f:
        runner = export.LiteRunner(f.read())
    assert runner.resolver == export.RESOLVER_FALLBACK and "XNNPACK" in runner.fallback_reason
    assert runner.predict(np.zeros(runner.length, np.int32)).shape == (2,)
