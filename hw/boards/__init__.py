"""Board designs (DESIGN.md section 9, docs/boards.md): hw.boards.top.BoardTop, the accelerator
with on-chip memory and the UART host link (hw.boards.link, spec/host_link.py). The board list
and the build live in bitstreams/."""
