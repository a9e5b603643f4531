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
                               dense=(kind == "cnn"),  # the LSTM's dense conversions would only cost time
                               pqat=True)  # CNN: PQAT + full-integer model; LSTM: the report says why not
    task = export.load_task(export.load_run(run_dir), 0, 1, "ticket")  # the exported ticket, in Keras
    return kind, run_dir, data, texts, report, "\n".join(logs), task


def test_layout_and_metadata(exported):
    kind, run_dir, _, _, report, logs, _ = exported
    path = report["path"]
    assert os.path.basename(path) == f"{os.path.basename(run_dir)}_r0_L01_ticket"  # best validation accuracy
    assert not [e for e in os.listdir(os.path.dirname(path)) if e.startswith((".tmp-", ".old-"))]
    expected = {"saved_model", "metadata.json", "export_report.json", "export_report.md", "vocab.txt",
                "ticket_float.tflite", "ticket_int8.tflite",
                "labels.txt", "tokenizer.json", "tokenizer_cases.json"}  # the mobile contract
    if kind == "cnn":
        expected |= {"dense", "dense_float.tflite", "dense_int8.tflite",
                     "ticket_pqat_int8.tflite", "dense_pqat_int8.tflite"}  # --pqat
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
    assert [n.decode() for n in out["class_name"].numpy()] == [CLASSES[i] for i in out["class_ids"].numpy()]
    assert out["class_names"].numpy().tolist() == [[c.encode() for c in CLASSES]] * (len(texts) + 2)
    probs = out["probabilities"].numpy()
    assert probs.shape == (len(texts) + 2, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    # The same texts encoded in Python (tokenize + vocab.txt, --max_len applied) through Keras, each text alone
    # (the SavedModel's answer for a text does not depend on its batch; Keras' CNN on a padded batch does).
    max_len = MODELS[kind][1]
    rows = encode(texts + ["", "unseen!"], max_len)
    ids = padded(rows)
    want = export.keras_probabilities(task.model, export.Examples(ids, np.asarray([len(r) for r in rows]), None, ""), 2)
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
                 "--[no]dense", "--tflite_length", "--max_examples", "--latency_runs", "--num_threads",
                 "--[no]pqat", "--pqat_epochs", "--pqat_learning_rate"):
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


# ----------------------------------------------------------------------------- mobile: batch independence ---
def _alone(task, rows):
    """The Keras network's probabilities for each row of ids alone (no padding at all)."""
    return np.stack([probabilities(task.model(np.asarray([r if len(r) else [0]], np.int32), training=False),
                                   2).numpy()[0] for r in rows])


def test_saved_model_batch_independent(exported):
    """A text's probabilities are the same alone or among others, in both signatures, and equal the Keras
    network's on the text alone; Keras' own CNN does depend on the batch's padding (the cause)."""
    kind, _, _, texts, report, _, task = exported
    loaded = tf.saved_model.load(os.path.join(report["path"], "saved_model"))
    rows = encode(texts, MODELS[kind][1])
    alone = _alone(task, rows)
    batch = loaded.signatures["serving_default"](texts=tf.constant(texts))["probabilities"].numpy()
    np.testing.assert_allclose(batch, alone, atol=1e-6)
    for i in (0, 1, 5):
        one = loaded.signatures["serving_default"](texts=tf.constant([texts[i]]))["probabilities"].numpy()[0]
        np.testing.assert_allclose(one, batch[i], atol=1e-6)
        ids_alone = loaded.signatures["token_ids"](token_ids=tf.constant([rows[i]], tf.int32))["probabilities"]
        np.testing.assert_allclose(ids_alone.numpy()[0], alone[i], atol=1e-6)  # no extra padding: Keras' output
    extra = np.pad(padded(rows), [[0, 0], [0, 7]])  # more padding than the batch needs changes nothing
    np.testing.assert_allclose(loaded.signatures["token_ids"](token_ids=tf.constant(extra))["probabilities"].numpy(),
                               alone, atol=1e-6)
    keras_batched = probabilities(task.model(padded(rows), training=False), 2).numpy()
    if kind == "cnn":  # the test network is one where padding wins max-pools (random biases, non-zero pad row)
        assert np.abs(keras_batched - alone).max() > 1e-3
    else:  # the LSTM masks padding
        np.testing.assert_allclose(keras_batched, alone, atol=1e-6)
    check = report["saved_model_checks"]["ticket/saved_model"]
    assert check["batched_vs_alone_max_abs_diff"] < 1e-6 and check["token_ids_vs_keras_alone_max_abs_diff"] < 1e-6


def test_tflite_batch_independent(exported):
    """TFLite runs one text per invoke and reads only its real ids: padded to L it gives the text alone's
    probabilities, which the SavedModel gives for the text in a batch."""
    kind, _, _, texts, report, _, task = exported
    loaded = tf.saved_model.load(os.path.join(report["path"], "saved_model"))
    length = report["tflite_length"]
    rows = [r[:length] for r in encode(texts, MODELS[kind][1])]
    in_batch = loaded.signatures["serving_default"](texts=tf.constant(texts))["probabilities"].numpy()
    alone = _alone(task, rows)
    with open(os.path.join(report["path"], "ticket_float.tflite"), "rb") as f:
        runner = export.LiteRunner(f.read())
    for i, r in enumerate(rows[:8]):
        ids = np.zeros(length, np.int32)
        ids[:len(r)] = r
        got = runner.predict(ids)
        np.testing.assert_allclose(got, alone[i], atol=1e-5)
        np.testing.assert_allclose(got, in_batch[i], atol=1e-5)


# --------------------------------------------------------------------------------- mobile: the contract ---
def test_contract_files_and_tokenizer_cases_agree(exported):
    """labels.txt, tokenizer.json, tokenizer_cases.json; the cases agree with lth_tf.data.tokenize, with
    tokenize_tf, with the SavedModel's own tokenisation and ids, and the TFLite input built from them gives
    the SavedModel's answer for the raw text."""
    from lth_tf.data import tokenize_tf

    kind, _, _, _, report, _, _ = exported
    path = report["path"]
    with open(os.path.join(path, "labels.txt"), encoding="utf-8") as f:
        assert f.read().splitlines() == CLASSES
    with open(os.path.join(path, "vocab.txt"), encoding="utf-8") as f:
        assert f.read().splitlines() == VOCAB
    spec = atomic.read_json(os.path.join(path, "tokenizer.json"))
    from lth_tf.data import tokenizer as T
    assert [(s["pattern"], s["replacement"], s["passes"]) for s in spec["steps"][1:-1]] == T.RULES
    assert spec["encoding"]["unknown_id"] == 1 and spec["encoding"]["tflite_length"] == report["tflite_length"]
    meta = atomic.read_json(os.path.join(path, "metadata.json"))
    assert meta["contract"]["labels"] == "labels.txt" and meta["contract"]["tokenizer"] == "tokenizer.json"

    cases = atomic.read_json(os.path.join(path, "tokenizer_cases.json"))["cases"]
    names = {c["name"] for c in cases}
    assert {"url", "emoticons", "non_ascii", "html_line_breaks", "empty", "casing", "punctuation_runs"} <= names
    by_name = {c["name"]: c for c in cases}
    assert by_name["empty"]["tokens"] == [] and by_name["html_line_breaks"]["tokens"][:3] == ["Good", ".", "Bad"]
    assert ":)" in by_name["emoticons"]["tokens"] and "Café" in by_name["non_ascii"]["tokens"]
    assert by_name["casing"]["tokens"][:3] == ["The", "THE", "the"]
    assert any(i > 1 for i in by_name["vocabulary_words"]["token_ids"])  # known words get their ids
    texts = [c["text"] for c in cases]
    index = {t: i for i, t in enumerate(VOCAB) if i > 1}
    for c in cases:
        assert tokenize(c["text"]) == c["tokens"], c["name"]
        assert c["token_ids"] == [index.get(t, 1) for t in c["tokens"]]
    assert [[t.decode() for t in row] for row in tokenize_tf(tf.constant(texts)).to_list()] == \
        [c["tokens"] for c in cases]

    loaded = tf.saved_model.load(os.path.join(path, "saved_model"))
    own = loaded.tokenize(tf.constant(texts))
    for c, toks, ids, n in zip(cases, own["tokens"].numpy(), own["token_ids"].numpy(), own["lengths"].numpy()):
        assert [t.decode() for t in toks[:n]] == c["tokens"] and ids[:n].tolist() == c["token_ids"], c["name"]
    served = loaded.signatures["serving_default"](texts=tf.constant(texts))
    for c, row in zip(cases, served["token_ids"].numpy()):
        k = len(c["saved_model_ids"])
        assert row[:k].tolist() == c["saved_model_ids"] and not row[k:].any(), c["name"]

    length = report["tflite_length"]
    with open(os.path.join(path, "ticket_float.tflite"), "rb") as f:
        runner = export.LiteRunner(f.read())
    probs = served["probabilities"].numpy()
    for c, p in zip(cases, probs):
        ids = np.zeros(length, np.int32)
        ids[:len(c["tflite_ids"])] = c["tflite_ids"]
        if len(c["tflite_ids"]) == len(c["saved_model_ids"]):  # the same ids read by both
            np.testing.assert_allclose(runner.predict(ids), p, atol=1e-5)


# ------------------------------------------------------------------------------- mobile: LiteRT, messages ---
def test_litert_verifies_without_deprecation_warnings(exported, recwarn):
    _, _, _, _, report, logs, _ = exported
    assert all(v["runtime"] == "ai_edge_litert" for v in report["tflite"].values())
    assert "TFLite models verified with LiteRT (ai_edge_litert" in logs
    with open(os.path.join(report["path"], "ticket_int8.tflite"), "rb") as f:
        export.LiteRunner(f.read())
    with export_tflite.quiet_tflite_deprecation():
        pass
    assert not [w for w in recwarn if "deprecated" in str(w.message)]


def test_fallback_to_tf_lite_is_said_once_and_quiet(exported, monkeypatch, recwarn):
    _, _, _, _, report, _, _ = exported
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails: as if not installed
    monkeypatch.setattr(export_tflite, "_NOTE", [])
    with open(os.path.join(report["path"], "ticket_float.tflite"), "rb") as f:
        content = f.read()
    runners = [export.LiteRunner(content) for _ in range(3)]
    assert {r.package for r in runners} == {"tf.lite"}
    note = export.interpreter_note()
    assert "ai-edge-litert is not usable here" in note and "deprecated" in note and len(export_tflite._NOTE) == 1
    assert not [w for w in recwarn if "tf.lite.Interpreter is deprecated" in str(w.message)]


def test_messages_say_what_they_measure(exported):
    kind, _, _, _, report, logs, task = exported
    assert "text_roundtrip_agreement" not in logs and "reload check {" not in logs
    assert "SavedModel reloaded and checked on 24 test texts" in logs
    assert "token_ids signature vs the Keras network on each text alone: same class for 100.0%" in logs
    assert "raw-text signature on the texts rebuilt from their tokens: its token ids equal " \
           "lth_tf.data.tokenize's for 100.0%; its probabilities vs Keras on those ids: same class for 100.0%" in logs
    assert "same predicted class as the Keras network (each text alone) on 100.0% of 24 test texts" in logs
    check = report["saved_model_checks"]["ticket/saved_model"]
    assert check["text_signature_ids_equal_python_tokenizer"] == 1.0 and check["text_signature_vs_keras_agreement"] == 1.0
    assert check["text_signature_vs_keras_max_abs_diff"] < 1e-6 and check["class_names_output"]
    table = open(os.path.join(report["path"], "export_report.md"), encoding="utf-8").read()
    assert "| pruned weights stored as 0 |" in table
    for key, info in report["tflite"].items():  # every weight located in every file, LSTM gates included
        zeros = info["pruned_zeros"]
        assert zeros["not_found"] == [], (key, zeros["not_found"])
        if key.startswith("ticket/"):
            assert zeros["fraction_kept"] == 1.0 and zeros["pruned"] > 0.45 * sum(m.size for m in task.masks.values())
    if kind == "cnn":
        assert "| ticket | TFLite int8 (PQAT, full integer) |" in table and "PQAT (--pqat): " in table
    else:
        assert "PQAT (--pqat): not for this network." in table
        assert "no quantization-aware training for the BiLSTM" in logs and "dynamic-range int8" in logs


# ---------------------------------------------------------------------------------------- mobile: PQAT ---
def test_pqat_keeps_zeros_and_gives_a_full_integer_model_litert_runs(exported):
    kind, run_dir, data, _, report, logs, task = exported
    if kind != "cnn":
        status = report["pqat"]
        assert status["supported"] is False and "not supported" in status["quantize_apply"]
        assert any("Bidirectional" in layer for layer in status["layers_without_8bit_config"])
        return
    info = report["tflite"]["ticket/pqat_int8"]
    q = info["pqat"]
    assert q["twin_vs_keras_max_abs_diff"] < 1e-5  # the Conv2D twin computes the Keras network
    zero = q["pruned_still_zero"]
    assert zero["all_zero"] and zero["pruned"] > 0.45 * sum(m.size for m in task.masks.values())
    assert info["pruned_zeros"]["fraction_kept"] == 1.0  # and the int8 file stores them as 0
    assert info["full_integer"] and info["float_tensors"] == []
    assert set(info["tensor_dtypes"]) <= {"int8", "int32", "bool"}
    assert (info["input_dtype"], info["output_dtype"]) == ("int32", "int8")
    assert info["runtime"] == "ai_edge_litert" and info["flex_or_custom"] == []
    assert info["examples"] == len(data.test) and info["agreement"] >= 0.75, info

    with open(os.path.join(report["path"], "ticket_pqat_int8.tflite"), "rb") as f:
        runner = export.LiteRunner(f.read())
    details = {d["index"]: d for d in runner.it.get_tensor_details()}
    ops = runner.it._get_ops_details()
    by_op = {}
    for op in ops:
        outs = [np.dtype(details[i]["dtype"]).name for i in op["outputs"] if i >= 0]
        by_op.setdefault(op["op_name"], set()).update(outs)
    for name in ("CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "GATHER"):
        assert by_op.get(name) == {"int8"}, (name, by_op)
    weights = [d for d in details.values() if len(d["shape"]) >= 2 and np.dtype(d["dtype"]) == np.int8
               and d["quantization_parameters"]["scales"].size]
    assert weights  # int8 weights with scales
    ids = np.zeros(runner.length, np.int32)
    ids[:3] = [5, 6, 7]
    p = runner.predict(ids)
    assert p.shape == (2,) and abs(p.sum() - 1) < 0.02
