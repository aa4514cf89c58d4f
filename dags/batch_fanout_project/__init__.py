"""The project's DAG helpers: what its DAGs share that the reusable provider must not know about."""
