"""batch-fanout hooks."""
