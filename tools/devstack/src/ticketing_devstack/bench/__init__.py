"""`make bench`: the figures of issue 12 on the local stack, each with its baseline measured in
the same run; one table printed, `bench/results.json` and the propagation CDF written.

`python -m ticketing_devstack.bench --help` for the sizes (`make bench BENCH_ARGS=...`).
"""
