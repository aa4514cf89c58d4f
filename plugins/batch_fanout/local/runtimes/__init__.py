"""Runtimes: how an attempt of a job becomes something to supervise (``process`` or a container)."""
