"""`tunectl`, the platform's command-line client (docs/cli.md).

Modules, one idea each: `config` (where the endpoint, token and TLS files come from),
`errors` (exit codes, and a failed call turned into lines a person reads), `connection`
(the channel and the stubs), `output` (tables for people, JSON for scripts), the command
groups `datasets`, `jobs`, `generate`, and `watch` / `watch_screen` / `plot` for following
a job and drawing its loss curve. `__main__` assembles them into one click group.
"""
