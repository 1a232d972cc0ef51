"""The worker process: submits jobs upstream, polls them, cancels and cleans up."""
