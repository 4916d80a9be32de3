; Feed-forward on a Clifford+T state: every Clifford and Pauli QMK can control, guarded by
; mid-circuit outcomes, and COND_PAULI on a parity, between T gates.
.version 0.2
.description "controlled H, S, SDG, CNOT, CZ, SWAP, X, Y, Z and COND_PAULI between T gates"
.caps CAP_ALLOC
.vqs a b c d
.chs
.events ma mb mc md me

alloc: ALLOC_LQ vq:a, vq:b, vq:c, vq:d, n=4
h1:    APPLY_H vq:a
t1:    APPLY_T vq:a
h2:    APPLY_H vq:a
h3:    APPLY_H vq:b
ma:    MEASURE_Z vq:a, out:ma
mb:    MEASURE_Z vq:b, out:mb
g1:    APPLY_H vq:c when ev:ma == 1
g2:    APPLY_T vq:c
g3:    APPLY_S vq:c when ev:mb == 0
g4:    APPLY_H vq:c
g5:    APPLY_CNOT vq:c, vq:d when ev:ma == 0
g6:    APPLY_H vq:d
g7:    APPLY_TDG vq:d
g8:    APPLY_CZ vq:c, vq:d when ev:mb == 1
g9:    APPLY_SDG vq:d when ev:ma == 1
g10:   APPLY_H vq:d
g11:   APPLY_SWAP vq:c, vq:a when ev:mb == 1
g12:   APPLY_Y vq:a when ev:ma == 1
g13:   COND_PAULI vq:c, in:ma, in:mb, mask="X"
g14:   APPLY_Z vq:d when ev:mb == 1
g15:   APPLY_H vq:d
mc:    MEASURE_Z vq:c, out:mc
md:    MEASURE_Z vq:d, out:md
me:    MEASURE_Z vq:a, out:me
free:  FREE_LQ vq:a, vq:b, vq:c, vq:d
