"""The gRPC front end: authenticates callers, validates and stores jobs, reads status."""
