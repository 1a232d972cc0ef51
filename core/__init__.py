"""Domain code shared by the API (`service`) and the workers (`worker`).

The job record and its states, the Redis store and its key names, settings, tenants
and errors live here once, so both processes agree on them.
"""
