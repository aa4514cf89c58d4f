"""The batch-fanout Airflow plugin: an array view on task instances and a report view on DAG runs.

Registered through the ``airflow.plugins`` entry point (:class:`batch_fanout.ui.plugin.BatchFanoutPlugin`),
so an installed provider brings it to Airflow's API server; ``airflow plugins`` lists it.
"""
