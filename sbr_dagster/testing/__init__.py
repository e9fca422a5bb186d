"""Support for tests and benchmarks (generated ML-1M-format data); not part of the pipeline."""
