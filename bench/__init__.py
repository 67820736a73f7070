"""Benchmarks: speed and memory measured side by side in one run, printed as ratios.

Run each from the repository root as a module, e.g. `python -m bench.load`,
so that it can use the test helpers in tests/support/.
"""
