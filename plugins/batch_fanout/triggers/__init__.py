"""batch-fanout triggers."""
