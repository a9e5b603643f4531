"""Instruments: analyses of a finished (or running) run that go beyond its accuracy report.

    python -m lth_tf.instruments.masks --run_dir=DIR [--out=DIR/mask_analysis]

- lth_tf.instruments.overlap: the arithmetic (overlap of two masks and what random masks of the same sizes
  would give, in closed form; survival per row, per filter, per gate), pure numpy.
- lth_tf.instruments.masks: the mask analysis of a run (replicates' overlap per level and tensor, consecutive
  levels, embedding survival by word frequency, CNN filters, LSTM gates) and its command.
- lth_tf.instruments.plots: its figures.

See docs/instruments.md.
"""
