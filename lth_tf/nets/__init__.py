"""The study's networks (Kim CNN, 2-layer BiLSTM) and FastLSTM, the CPU-fast LSTM layer they use.

The names below are shared with code that must not load TensorFlow (masks, the run directory).
"""
PAD_ID, UNK_ID = 0, 1  # token ids: padding, unknown
EMBEDDING_LAYER, OUTPUT_LAYER = "embedding", "output"  # layer names the pruning selection refers to
