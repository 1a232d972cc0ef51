"""Everything the platform keeps in Redis, and the only code that talks to it.

Key names are built in `keys`, scripts live in `scripts` (each with the one function
that builds its KEYS and ARGV), and every Redis failure becomes a project error in
`client.translated_errors`.
"""
