"""Runs the whole system on one machine: a real Redis, the emulator, the API and a worker.

`python -m devstack` is the README's demo. The tests use `RedisServer` from here too.
"""
