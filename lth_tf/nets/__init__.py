"""The study's networks (Kim CNN, 2-layer BiLSTM) and FastLSTM, the CPU-fast LSTM layer they use."""
