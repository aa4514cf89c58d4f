# The Airflow image that deploys this project's DAGs and provider (MWAA and Astro users install
# requirements.txt and the provider distribution instead). Job images live in include/containers/.
FROM apache/airflow:3.3.2-python3.11

# Airflow itself is pinned by requirements.txt to the version of the base image.
COPY --chown=airflow:root requirements.txt /opt/batch-fanout/requirements.txt
RUN ["pip", "install", "--no-cache-dir", "-r", "/opt/batch-fanout/requirements.txt"]

# The provider package (plugins/batch_fanout); what it needs beyond the pins above (nothing, when
# they are current) comes with it.
COPY --chown=airflow:root pyproject.toml README.md /opt/batch-fanout/
COPY --chown=airflow:root plugins/batch_fanout /opt/batch-fanout/plugins/batch_fanout
RUN ["pip", "install", "--no-cache-dir", "/opt/batch-fanout"]

# The project: its DAGs (with their library, dags/batch_fanout_project) and, beside them as in the
# checkout, the job definitions its registration task reads.
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root include/specs /opt/airflow/include/specs
# The jobs' shared package, which the project's preflight checks use (limits, graph formats).
COPY --chown=airflow:root include/containers/shared /opt/airflow/include/containers/shared
ENV PYTHONPATH=/opt/airflow/include/containers/shared

USER airflow
