"""Benchmarks, run by `make bench` (bench/run.py), written to bench/results.json."""
