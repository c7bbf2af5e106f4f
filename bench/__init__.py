"""Benchmarks: our ``igneous`` against the reference igneous-pipeline, side by side.

Run ``python -m bench.harness --list`` to see the workflows; see bench/README.md.
Nothing here is imported by the package or the tests.
"""
