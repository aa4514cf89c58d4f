"""Code shared by every job image: logical index, results-store I/O, atomic writes, log lines."""
