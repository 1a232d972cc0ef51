"""Runs the whole system on one machine: a real Redis, the emulator, the API and workers.

`devstack.launcher` is the one way to start it (the demo, the benchmarks and the
end-to-end tests share it); `python -m devstack` is the README's demo.
"""
