"""batch-fanout operators."""
