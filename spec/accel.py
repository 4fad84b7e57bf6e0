"""Accelerator configurations: the one place where the hardware's sizes are chosen.

hw/ builds every component from an `AccelConfig`; the compiler, the simulators and the board
builds read the same object. Derived sizes (lanes of the ternary array, trits per beat) are
properties, never separate numbers.

The ternary array consumes one memory beat per cycle. A beat of a packed matrix is one column
group of one row tile (docs/weight-image.md): `beat_bytes` rows x `trits_per_byte` columns, so the
array has `beat_bytes` row accumulators, each adding `trits_per_byte` ternary products per cycle:
256 weights per cycle at 2 bits, 320 at 1.6 bits for a 64-byte (512-bit) beat (DESIGN.md section 5).
"""
from __future__ import annotations

import dataclasses

from spec import isa
from spec import numerics as N
from spec.dram import MAX_CHANNELS, check_channels
from spec.weight_image import BEAT_BYTES_ALLOWED

TRITS_PER_BYTE = {"2bit": 4, "1.6bit": 5}


@dataclasses.dataclass(frozen=True)
class AccelConfig:
    name: str
    beat_bytes: int          # weight-stream beat: bytes per cycle into the ternary array
    packing: str             # "2bit" | "1.6bit"
    vector_lanes: int        # elements per cycle in the vector units
    vlen: int                # depth of a vector register (max VL the hardware supports)
    rom_words: int           # instruction ROM depth
    cores: int = 1           # cores sharing one broadcast weight stream (batch): the one place it is set

    def __post_init__(self):
        if self.packing not in TRITS_PER_BYTE:
            raise ValueError(f"packing must be one of {sorted(TRITS_PER_BYTE)}, got {self.packing!r}")
        if self.beat_bytes not in BEAT_BYTES_ALLOWED:
            raise ValueError(f"beat_bytes must be one of {', '.join(map(str, BEAT_BYTES_ALLOWED))}, "
                             f"got {self.beat_bytes}")
        for f in ("vector_lanes", "vlen", "rom_words", "cores"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f} must be >= 1, got {getattr(self, f)}")
        if self.vlen > isa.VL_MAX:
            raise ValueError(f"vlen {self.vlen} exceeds the ISA's VL_MAX {isa.VL_MAX}")

    def with_cores(self, cores: int) -> AccelConfig:
        """This configuration with `cores` cores (the batch): how `make sim CORES=n`, the Device API
        and the tests ask for several cores; every builder reads `config.cores`."""
        return dataclasses.replace(self, cores=cores)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def trits_per_byte(self) -> int:
        return TRITS_PER_BYTE[self.packing]

    @property
    def row_lanes(self) -> int:
        """Row accumulators of the ternary array (rows of one row tile)."""
        return self.beat_bytes

    @property
    def macs_per_cycle(self) -> int:
        return self.beat_bytes * self.trits_per_byte

    @property
    def beat_bits(self) -> int:
        return 8 * self.beat_bytes

    @property
    def acc_bits(self) -> int:
        """Signed accumulator width: |acc| <= 128 * vlen (TMATMUL reads int8 codes; the numerics
        keep them in [-127, 127], the ISA allows -128)."""
        return (128 * self.vlen).bit_length() + 1

    @property
    def fx_bits(self) -> int:
        return N.FX_BITS


#: Named configurations. `ddr4`: one DDR4-2400 x64 channel at 1:4 (512-bit user beat);
#: `ddr4x2` / `ddr4x4`: the same core sized for 2 / 4 such channels (a beat of one line per channel,
#: 1024 / 2048 bits, and the vector lanes scaled with it, so the vector work shrinks with the
#: weight stream); `ecp5`: a board-sized core for ECP5-85F; `ice40`: the reduced iCE40 build.
CONFIGS: dict[str, AccelConfig] = {
    "ddr4": AccelConfig("ddr4", beat_bytes=64, packing="1.6bit", vector_lanes=16, vlen=8192, rom_words=1024),
    "ddr4x2": AccelConfig("ddr4x2", beat_bytes=128, packing="1.6bit", vector_lanes=32, vlen=8192, rom_words=1024),
    "ddr4x4": AccelConfig("ddr4x4", beat_bytes=256, packing="1.6bit", vector_lanes=64, vlen=8192, rom_words=1024),
    "ecp5": AccelConfig("ecp5", beat_bytes=16, packing="1.6bit", vector_lanes=4, vlen=1024, rom_words=512),
    "ice40": AccelConfig("ice40", beat_bytes=8, packing="2bit", vector_lanes=1, vlen=256, rom_words=256),
}


#: The configuration sized for n DDR4 channels (a beat of one 64-byte line per channel): what
#: `make sim CHANNELS=n` and `make bench` use unless a configuration is named. 3 channels have no
#: beat of their own (beats are powers of two); they run the 1-channel core.
CHANNEL_CONFIGS: dict[int, str] = {1: "ddr4", 2: "ddr4x2", 3: "ddr4", 4: "ddr4x4"}
assert sorted(CHANNEL_CONFIGS) == list(range(1, MAX_CHANNELS + 1)), "a config for every supported channel count"


def config_for_channels(channels: int) -> AccelConfig:
    """The named configuration for `channels` DDR4 channels (CHANNEL_CONFIGS)."""
    return CONFIGS[CHANNEL_CONFIGS[check_channels(channels)]]


def get_config(name: str) -> AccelConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown accelerator config {name!r}; valid: {', '.join(CONFIGS)}") from None


# -- timing and area budgets ------------------------------------------------------------------------

#: The worst register-to-register path a unit may have for a 100 MHz ECP5 build (-6 speed grade),
#: as bitstreams.units estimates it from the unit's mapped netlist.
TARGET_PATH_NS = 10.0


@dataclasses.dataclass(frozen=True)
class UnitBudget:
    """What one unit of the core may cost, synthesized alone for an ECP5 (bitstreams.units)."""
    luts: int           # LUT4, plus 2 per CCU2C (nextpnr's TRELLIS_COMB)
    ffs: int            # flip-flops
    dsps: int           # MULT18X18D
    brams: int          # DP16KD
    path_ns: float      # the estimated worst path


#: Per unit of hw/core, for the `ecp5` config. Each holds what the unit is today (its measured
#: figures with a few percent of margin; a path at most TARGET_PATH_NS where the unit meets it): a
#: unit that grows or gets a deeper path fails tests/bitstreams/test_units.py. Paths above
#: TARGET_PATH_NS are the work left for a 100 MHz build (docs/core.md, "Timing and area"). LUT,
#: DSP and path budgets only ever move down, as a whole (a unit may take LUTs another gave up: the
#: read queues of the units came with the register file's registered router, which saved more);
#: flip-flops and block RAMs may be traded for them (pipelines are registers).
UNIT_BUDGETS: dict[str, UnitBudget] = {
    "tmac": UnitBudget(luts=2_560, ffs=1_640, dsps=0, brams=10, path_ns=8.0),
    "matmul": UnitBudget(luts=7_000, ffs=3_850, dsps=10, brams=10, path_ns=10.2),
    "vec": UnitBudget(luts=9_500, ffs=9_010, dsps=44, brams=24, path_ns=8.5),
    "normq": UnitBudget(luts=17_280, ffs=12_000, dsps=36, brams=0, path_ns=10.0),   # FFs: the range-compare stage
    "argmax": UnitBudget(luts=660, ffs=540, dsps=0, brams=0, path_ns=8.3),
    "lsu": UnitBudget(luts=3_730, ffs=1_210, dsps=0, brams=0, path_ns=8.8),
    "regfile": UnitBudget(luts=14_060, ffs=6_400, dsps=0, brams=48, path_ns=6.9),
    # the core's LUTs and path move by a few percent between netlists that differ only in names
    # (abc's mapping: 57,197 to 57,471 LUTs and 14.4 to 15.4 ns for three netlists of one
    # sequencer step, 57,733 and 59,295 for two before it): more margin
    # (flip-flops and block RAMs: 36,162 and 86 with the ROM's output register in the block RAM,
    # at least 1024 words, and the registered write-backs and rounding stages)
    "core": UnitBudget(luts=58_000, ffs=36_500, dsps=91, brams=86, path_ns=12.0),
}
