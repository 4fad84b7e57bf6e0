"""Backends of the host Device API (sw/device.py) that simulate the RTL: `amaranth` (amaranth.py)
and `verilator` (verilator.py, the full-system C++ harness in harness/). They are registered by the
package's entry points (pyproject.toml), so sw.device opens them by name without importing them."""
