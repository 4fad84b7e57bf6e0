"""The project's contracts, defined once: model configs, numerics, weight image (later: ISA,
accelerator config, DRAM timings).

Rule: modules here import nothing from the rest of the repository, nor torch nor cocotb; numpy and
the standard library only. Everything else derives from them.
"""
