"""The DDR4 memory controller (issue #5): one channel, one rank, DFI 1:4.

    Controller      controller.py   the component: native line port in, DFI out
    AddressMapper   mapper.py       line address -> bg/ba/row/col for spec.dram.ADDRESS_MAPS
    BankMachine     bank.py         one per bank: in-order queue, open row, per-bank counters
    Refresher       refresher.py    tREFI debt, postponement credit, forced and idle refresh
    InitSequencer   init.py         the power-up / mode-register / ZQCL sequence
    timers.py                       "clocks until allowed" counters, round-robin choice
"""
from .bank import BankMachine
from .controller import Controller
from .init import InitSequencer, init_steps
from .mapper import AddressMapper, field_slices
from .refresher import Refresher

__all__ = ["AddressMapper", "BankMachine", "Controller", "InitSequencer", "Refresher", "field_slices",
           "init_steps"]
