def get_provider_info():
    return {"package-name": "airflow-provider-batch-fanout", "name": "batch-fanout", "description": "", "versions": ["0.1.0"]}
