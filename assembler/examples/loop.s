; loop.s: add a vector to itself N times, writing each partial sum back to memory.
; Assemble: python -m assembler assembler/examples/loop.s -o build/loop.hex -l build/loop.lst

.equ N, 4                   ; iterations
VLEN  = 64                  ; elements per vector
STATE = 0x1000              ; byte address of the writable state region

        SETVL VLEN
        MOVI  A1, N         ; loop counter
        MOVI  A2, STATE     ; destination pointer
        LDV   V0, [A2]      ; V0 = x
        MOVV  V1, V0        ; V1 = x
loop:   ADD   V1, V1, V0    ; V1 += x
        SV    [A2 + 8 * VLEN], V1
        ADDI  A2, A2, 8 * VLEN
        DJNZ  A1, loop
        HALT
