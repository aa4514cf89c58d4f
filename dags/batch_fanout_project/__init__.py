"""The project's DAG library: what the project's DAGs share (names, DAG arguments and trigger-form
parameters, job definitions, report reading, checks before submission, its ``batch-fanout`` commands). It lives beside the DAG files, which Airflow
puts on ``sys.path``; ``.airflowignore`` keeps the DAG processor from parsing it as DAG files.

The provider (``plugins/batch_fanout``) knows nothing of it: this package is the provider's first user.
"""
