"""Throughput benchmarks behind `xablate bench` (results land in results/bench/)."""
