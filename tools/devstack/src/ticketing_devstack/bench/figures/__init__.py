"""The figures of `make bench`, one module each: each measures on the run's `Harness` and adds
its lines to the table (`Harness.figures`). `bench/run.py` runs the ones asked for, in order.
"""
