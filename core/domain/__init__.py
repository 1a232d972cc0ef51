"""The job as data: its record, states, state machine and quotas. No I/O here."""
