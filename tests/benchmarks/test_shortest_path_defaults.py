"""``benchmarks/shortest_path.py`` measures start-up at the DAGs' own trigger-form defaults: it reads
them from the DAGs as Airflow loads them, so it keeps working when the form's fields move."""

from __future__ import annotations

import pytest

from .conftest import load_benchmark

benchmark = load_benchmark("shortest_path")


def test_the_defaults_are_those_of_each_dags_trigger_form() -> None:
    from batch_fanout_project.pipeline import graph_params

    grid_default = graph_params()["grid"].value
    grid, shards = benchmark.dag_defaults(
        "shortest_path_all_pairs.py", "shortest_path_all_pairs", "grid", "shards"
    )
    assert (grid, shards) == (grid_default, 4)
    grid, tests = benchmark.dag_defaults("batch_fanout_pipeline.py", "batch_fanout", "grid", "tests")
    assert (grid, tests) == (grid_default, 4)


def test_a_field_the_form_lacks_is_named() -> None:
    with pytest.raises(SystemExit, match="batch_fanout has no grid and shards"):
        benchmark.dag_defaults("batch_fanout_pipeline.py", "batch_fanout", "grid", "shards")
