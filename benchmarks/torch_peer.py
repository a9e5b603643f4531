"""PyTorch peer of the study's models, run as a worker process driven by `benchmarks.peers`.

The study's two networks in PyTorch (the study's own framework): the Kim CNN (embedding, Conv1d 100 x
{3,4,5}, ReLU, max over time, dropout, linear) and the 2-layer bidirectional LSTM over packed sequences
(the study's way of giving each text its true length), Adam, BCE-with-logits, batch 64. "masked" prunes
every parameter tensor (embedding, kernels, biases, LSTM weights) with `torch.nn.utils.prune` at a
fixed random 20% mask; "dense" trains without masks. A variant ending in "_bf16" runs the forward pass and
the loss under `torch.autocast("cpu", dtype=torch.bfloat16)` (PyTorch's mixed precision: float32
parameters, bfloat16 compute where autocast lists the op; the backward outside the autocast region, as
PyTorch recommends).

Protocol (one JSON object per line): the worker prints {"ready": ...} after warm-up, then answers every
`{"variant": v, "steps": k}` on stdin with {"seconds_per_step": s, "cpu_seconds_per_step": c}. Run alone it prints its version.
Imported only here: lth_tf never imports torch.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def main():
    import torch
    from torch import nn
    from torch.nn.utils import prune

    args = json.loads(sys.argv[1])
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model_kind, length, vocab, batch = args["model"], args["length"], args["vocab"], args["batch"]
    variants = args["variants"]

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, 100, padding_idx=0)
            self.convs = nn.ModuleList([nn.Conv1d(100, 100, w) for w in (3, 4, 5)])
            self.dropout = nn.Dropout(0.5)
            self.output = nn.Linear(300, 1)

        def forward(self, ids, lengths):
            x = self.embedding(ids).transpose(1, 2)
            pooled = [torch.relu(conv(x)).amax(dim=2) for conv in self.convs]
            return self.output(self.dropout(torch.cat(pooled, 1)))

    class BiLSTM(nn.Module):
        def __init__(self, packed=True):
            super().__init__()
            self.packed = packed
            self.embedding = nn.Embedding(vocab, 100, padding_idx=0)
            self.dropout = nn.Dropout(0.5)
            self.lstm = nn.LSTM(100, 256, num_layers=2, bidirectional=True, dropout=0.5, batch_first=True)
            self.output = nn.Linear(512, 1)

        def forward(self, ids, lengths):
            x = self.dropout(self.embedding(ids))
            if self.packed:
                x = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(x)
            return self.output(self.dropout(torch.cat([h[-2], h[-1]], 1)))

    rng = np.random.default_rng(0)
    data = [(torch.from_numpy(rng.integers(2, vocab, size=(batch, length)).astype(np.int64)),
             torch.full((batch,), length, dtype=torch.int64),
             torch.from_numpy(rng.integers(0, 2, size=(batch, 1)).astype(np.float32))) for _ in range(4)]

    def make(variant):
        autocast = variant.endswith("_bf16")
        variant = variant.removesuffix("_bf16")
        if model_kind == "cnn":
            model = CNN()
        else:
            model = BiLSTM(packed=not variant.endswith("_padded"))
        if variant.startswith("masked"):
            mrng = np.random.default_rng(1)
            for module in model.modules():
                for name, p in list(module.named_parameters(recurse=False)):
                    mask = torch.from_numpy(mrng.random(tuple(p.shape)) >= 0.2).to(p.dtype)
                    prune.custom_from_mask(module, name, mask)
        optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
        loss_fn = nn.BCEWithLogitsLoss()
        model.train()
        state = {"i": 0}

        def step():
            ids, lengths, labels = data[state["i"] % len(data)]
            state["i"] += 1
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn(model(ids, lengths), labels)
            loss.backward()
            optimizer.step()
        return step

    steps = {v: make(v) for v in variants}
    for s in steps.values():
        for _ in range(args.get("warmup", 2)):
            s()
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "mkldnn": torch.backends.mkldnn.is_available()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        step, k = steps[cmd["variant"]], cmd["steps"]
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(k):
            step()
        print(json.dumps({"seconds_per_step": (time.perf_counter() - start) / k,
                          "cpu_seconds_per_step": (time.process_time() - cpu) / k}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 1:
        import torch
        print(torch.__version__)
    else:
        main()
