"""The data layer: datasets, tokeniser, vocabulary, cache, tf.data batches and GloVe (see docs/data.md).

    data = prepare_data(cfg.data, vocab_size, log)      # PreparedData: vocab, class_names, train/valid/test
    ds = make_dataset(data.train, 64, shuffle_seed=s)    # (ids int32 [B, T], labels int32 [B]) batches
    matrix, info = load_glove(path, data.vocab, counts=data.vocab_counts)
    tokenize(text) / tokenize_tf(texts)                  # the same rules in Python and in TensorFlow
"""
from lth_tf.data.glove import load_glove
from lth_tf.data.pipeline import make_dataset, plan_batches
from lth_tf.data.prepare import PreparedData, prepare_data
from lth_tf.data.splits import EncodedSplit
from lth_tf.data.tokenizer import TOKENIZER_VERSION, tokenize, tokenize_tf

__all__ = ["EncodedSplit", "PreparedData", "prepare_data", "make_dataset", "plan_batches", "load_glove",
           "tokenize", "tokenize_tf", "TOKENIZER_VERSION"]
