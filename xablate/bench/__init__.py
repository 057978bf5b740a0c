"""Throughput benchmarks behind `xablate bench` (results land in results/bench/)."""

# the measurements of `xablate bench harness`, in the order it runs them (kept here: the CLI parses --only
# without importing Keras)
HARNESS_SUITES = ("overhead", "reuse", "parity", "pipeline", "backends")
