"""batch-fanout sensors."""
