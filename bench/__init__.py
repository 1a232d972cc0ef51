"""Benchmarks: each figure measured against a baseline run in the same invocation.

`python -m bench` runs them all and prints a table; `python -m bench.<figure>` runs one.
Every figure starts its own real processes (Redis, emulator, API, workers) and stops them.
"""
