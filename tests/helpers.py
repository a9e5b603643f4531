"""Small synthetic inputs for tests that must not need any dataset."""
import numpy as np

from lth_tf.keras import tf


def synthetic_batches(n=192, length=30, vocab=300, num_classes=2, seed=0, batch_size=32):
    """A learnable toy task: the class is written in the first token. Returns a batches(epoch) factory."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocab, size=(n, length)).astype(np.int32)
    labels = rng.integers(0, num_classes, size=n).astype(np.int32)
    ids[:, 0] = 2 + labels
    lengths = rng.integers(length // 2, length + 1, size=n)
    for i, L in enumerate(lengths):
        ids[i, L:] = 0

    def batches(epoch=None):
        ds = tf.data.Dataset.from_tensor_slices((ids, labels))
        if epoch is not None:
            ds = ds.shuffle(n, seed=int(epoch), reshuffle_each_iteration=False)
        return ds.batch(batch_size)

    return batches


def run_dir(out):
    """The one CNN run directory in output directory `out`."""
    import os

    (name,) = [d for d in os.listdir(out) if d.startswith("cnn_")]
    return os.path.join(out, name)


def results(out):
    """That run's results.json records without their wall times, in a fixed order (to compare runs)."""
    import json
    import os

    with open(os.path.join(run_dir(out), "results.json")) as f:
        records = json.load(f)["records"]
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in records),
                  key=lambda r: (r["replicate"], r["level"], r["branch"]))
