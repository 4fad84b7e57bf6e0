"""Pieces shared by the hw/core units that are parametrized by an AccelConfig."""
from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence

from amaranth.hdl import Mux, Value
from amaranth.lib import wiring

from spec import numerics as N
from spec.accel import AccelConfig


def and_or(sels: Sequence, values: Sequence) -> Value:
    """The OR of ``values[k]`` where ``sels[k]`` is set: a choice among one-hot selects (or among
    equal values where several are set), built as an AND-OR. Each select drives one gate per bit
    and an OR tree follows, two pairs per LUT, instead of a chain of overriding muxes or a binary
    choice whose low select bit reaches every bit's first level. 0 where no select is set."""
    if len(sels) != len(values) or len(sels) == 0:
        raise ValueError(f"and_or needs as many selects as values, at least one ({len(sels)}, {len(values)})")
    return functools.reduce(operator.or_, (Mux(s, v, 0) for s, v in zip(sels, values, strict=True)))


def check_config(config) -> None:
    """An AccelConfig whose FX width is the numerics contract's; exact messages (tested)."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    if config.fx_bits != N.FX_BITS:
        raise ValueError(f"config.fx_bits must be the numerics' FX_BITS {N.FX_BITS}, got {config.fx_bits}")


class LaneComponent(wiring.Component):
    """A component working on `config.vector_lanes` elements per transfer.

    Validates the config (:func:`check_config`) and keeps it; subclasses pass a function that
    builds their signature members from the lane count (called only after validation).
    """

    def __init__(self, config: AccelConfig, signature: Callable[[int], dict]):
        check_config(config)
        self._config = config
        self._lanes = config.vector_lanes
        super().__init__(signature(self._lanes))

    @property
    def config(self) -> AccelConfig:
        return self._config

    @property
    def lanes(self) -> int:
        return self._lanes


class CoreUnit(LaneComponent):
    """A functional unit of the core (hw/core/iface.py): a LaneComponent whose config also meets
    the whole core's constraints (`hw.core.iface.check_core_config`)."""

    def __init__(self, config: AccelConfig, signature: Callable[[int], dict]):
        from .iface import check_core_config

        check_core_config(config)
        super().__init__(config, signature)
