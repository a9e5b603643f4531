"""Performance benchmarks of lth_tf: `python -m benchmarks.run` (see docs/benchmarks.md)."""
