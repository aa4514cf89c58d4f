"""Stated bounds the leader enforces and the Airflow worker checks before a run is submitted.

Pure Python (no numpy), so that a DAG's preflight check imports it without the jobs' dependencies.

The leader generates a grid graph in memory: about :data:`GRID_BYTES_PER_NODE` bytes a grid node at
its peak (measured: 506 bytes a node for 512x512, 419 for 1024x1024, generation plus the CSR
archive and its sha256), above :data:`LEADER_BASELINE_MIB` for the interpreter, numpy and scipy. The
sum must fit :data:`LEADER_MEMORY_MIB`, the ``MEMORY`` of the leader's job definition. Reading a DIMACS
file takes about :data:`GRAPH_BYTES_PER_TEXT_BYTE` bytes a byte of (uncompressed) text at its peak
(measured: 12.5 for a 13.9 MB file of a 259k-node grid), above the same baseline.
"""

from __future__ import annotations

from batch_fanout_job.errors import BadInputError

#: The leader job definition's ``MEMORY`` resource requirement (MiB); a test keeps them equal.
LEADER_MEMORY_MIB = 1024
#: What the leader's interpreter holds before it builds a graph (MiB), rounded up.
LEADER_BASELINE_MIB = 128
#: Peak bytes a grid node while the leader generates and writes the grid, rounded up.
GRID_BYTES_PER_NODE = 512
#: Peak bytes the leader holds per byte of DIMACS text while it parses, builds and writes the graph,
#: rounded up.
GRAPH_BYTES_PER_TEXT_BYTE = 16
#: AWS Batch's largest array job.
MAX_ARRAY_SIZE = 10_000

_MIB = 1024 * 1024


def grid_memory_mib(rows: int, columns: int) -> int:
    """The leader's estimated peak memory (MiB, rounded up) to generate a ``rows`` x ``columns`` grid."""
    return LEADER_BASELINE_MIB + -(-rows * columns * GRID_BYTES_PER_NODE // _MIB)


def check_grid_fits(rows: int, columns: int, option: str = "--grid") -> None:
    """Refuse a grid whose generation would not fit the leader's memory.

    :param rows: grid rows.
    :param columns: grid columns.
    :param option: the parameter's name for the message (``--grid`` in the job, ``grid`` in a DAG).
    :raises BadInputError: stating the estimate and the bound.
    """
    estimate = grid_memory_mib(rows, columns)
    if estimate > LEADER_MEMORY_MIB:
        largest = (LEADER_MEMORY_MIB - LEADER_BASELINE_MIB) * _MIB // GRID_BYTES_PER_NODE
        raise BadInputError(
            f"{option} {rows}x{columns}: generating {rows * columns} nodes needs about {estimate} MiB "
            f"({LEADER_BASELINE_MIB} MiB + {GRID_BYTES_PER_NODE} bytes a node), more than the leader's "
            f"{LEADER_MEMORY_MIB} MiB: give a grid of at most {largest} nodes"
        )


def graph_text_memory_mib(text_bytes: int) -> int:
    """The leader's estimated peak memory (MiB, rounded up) to read a DIMACS file of ``text_bytes``."""
    return LEADER_BASELINE_MIB + -(-text_bytes * GRAPH_BYTES_PER_TEXT_BYTE // _MIB)


def largest_graph_text_bytes() -> int:
    """The largest DIMACS text (bytes, uncompressed) the leader reads within its memory."""
    return (LEADER_MEMORY_MIB - LEADER_BASELINE_MIB) * _MIB // GRAPH_BYTES_PER_TEXT_BYTE


def check_graph_text_fits(text_bytes: int, name: str) -> None:
    """Refuse a DIMACS file whose reading would not fit the leader's memory.

    :param text_bytes: its size as text (uncompressed), or an estimate.
    :param name: the input's name (and parameter) for the message.
    :raises BadInputError: stating the estimate and the bound.
    """
    estimate = graph_text_memory_mib(text_bytes)
    if estimate > LEADER_MEMORY_MIB:
        raise BadInputError(
            f"{name}: reading {text_bytes} bytes of DIMACS text needs about {estimate} MiB "
            f"({LEADER_BASELINE_MIB} MiB + {GRAPH_BYTES_PER_TEXT_BYTE} bytes a byte of text), more than "
            f"the leader's {LEADER_MEMORY_MIB} MiB: the leader reads at most {largest_graph_text_bytes()} "
            "bytes of text"
        )
