"""What facade costs over hand-written redis-py, measured on one server in one run.

    python -m bench                  # from the repository root; --help for the options

Each figure runs the same workload twice per round, once with raw redis-py commands and once
through the facade SDK, on a throwaway server started for the run (never a server you already
have). It reports the median rate of each side and their ratio, SDK / raw: 1.0 means facade costs
nothing over the raw commands, 0.5 means it delivers half the raw rate. Absolute rates depend on
the machine; the ratio is the figure to compare.

Modules: ``server`` (the throwaway server), ``workloads`` (both sides of every figure),
``report`` (the table and the JSON), ``__main__`` (options and the run).
"""
