; macros.s: .include, macros with arguments, .rept, and a countdown with a backwards branch.
.include "common.s"

        SETVL D_MODEL
        MOVI A4, 0
        .rept 3                 ; three rows, unrolled
        LOADROW V0, A4
        SIG V1, V0
        GMUL V2, V0, V1         ; silu by hand: x * sigmoid(x)
        .endr
        MOVI A5, 2
again:  ADVANCE A4, -ROW_BYTES
        BLTZ A4, done
        DJNZ A5, again
done:   HALT
