; common.s: constants and macros shared by the examples (included by macros.s).
D_MODEL = 256
ROW_BYTES = D_MODEL * 8

; ptr += bytes
.macro ADVANCE ptr, bytes
        ADDI \ptr, \ptr, \bytes
.endm

; v = load(ptr); ptr += one row
.macro LOADROW v, ptr
        LDV \v, [\ptr]
        ADVANCE \ptr, ROW_BYTES
.endm
