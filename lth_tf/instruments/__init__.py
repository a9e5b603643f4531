"""Instruments: analyses of a finished (or running) run that go beyond its accuracy report.

    python -m lth_tf.instruments.masks --run_dir=DIR [--out=DIR/mask_analysis]
    python -m lth_tf.instruments.instability --run_dir=DIR --level=L --rewind_steps=0it,110it,1ep
    python -m lth_tf.instruments.early_bird --run_dir=DIR

- lth_tf.instruments.overlap: the arithmetic (overlap of two masks and what random masks of the same sizes
  would give, in closed form; survival per row, per filter, per gate), pure numpy.
- lth_tf.instruments.masks: the mask analysis of a run (replicates' overlap per level and tensor, consecutive
  levels, embedding survival by word frequency, CNN filters, LSTM gates) and its command.
- lth_tf.instruments.plots: its figures (and the figure helpers the other reports share).
- lth_tf.instruments.instability: the instability analysis of a level's ticket (copies trained from several
  rewind steps as tasks of the run, the error on the line between them) and its command;
  lth_tf.instruments.instability_report: its files.
- lth_tf.instruments.early_bird: the early-bird report (mask distance over training, early-bird vs IMP tickets).

See docs/instruments.md.
"""
