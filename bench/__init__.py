"""Benchmarks of the `ipc` message channel.

``bench/workload.py`` holds the workloads (what is measured, importable), used by the
``bench/ipc_bench.py`` script (``make bench``: rounds, medians, the table) and by the
explorer's transport lab (``webapp/lab.py``: one run, streamed live to the page), so that both
measure exactly the same thing.
"""
