"""batch-fanout links."""
