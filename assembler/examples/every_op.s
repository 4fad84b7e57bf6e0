; every_op.s: each instruction of spec.isa once (operand forms as in docs/isa.md).
start:
        NOP
        BARRIER
        SETVL 128
        MOVI A1, -5
        ADDI A2, A1, 0x7fff_ffff
        ADDS A3, A1, A2
        SUBS A4, A3, A1
        MULS A5, A4, A4
        LDW A6, [A0 + 16]
        LDF F1, [A6 - 4]
        FMUL F2, F1, F1
        TOKIN A7
        TOKOUT A7
        LDV V0, [A0]
        SV [A8 + 0b1000], V0
        LDG V1, [A9 + 2]
        LDGT V2, [A10 + 4]
        LDE V3, A7, [A11]
        ADD V4, V0, V1
        SUB V4, V4, V1
        MUL V5, V4, V4
        DIV V6, V5, V4
        EXP V7, V6
        SIG V7, V7
        SILU V6, V6
        GMUL V5, V6, V2
        ONEM V2, V2
        MOVV V1, V2
        NORM V0, V1, V2, A12
        QNT V0, F3, V1, V2, A12
        TMATMUL V4, V0, A13, F3, 1024
        ARGMAX A14, A15, V4, A0
        BLTZ A1, start
        DJNZ A5, start
        JMP end
end:    HALT
