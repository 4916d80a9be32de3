; Patches used again: a T state injected, measured, the qubit reset and re-prepared, and
; a qubit freed and allocated afresh, with T gates between.
.version 0.2
.description "RESET, re-allocation and INJECT_T_STATE on used qubits, between T gates"
.caps CAP_ALLOC CAP_MAGIC
.vqs a b
.chs
.events m1 m2 m3 m4

alloc:  ALLOC_LQ vq:a, vq:b, n=2
inj:    INJECT_T_STATE vq:a
c1:     APPLY_CNOT vq:a, vq:b
h1:     APPLY_H vq:a
m1:     MEASURE_Z vq:a, out:m1
r1:     RESET vq:a
h2:     APPLY_H vq:a
t2:     APPLY_T vq:a
c2:     APPLY_CNOT vq:b, vq:a
inj2:   INJECT_T_STATE vq:b
h3:     APPLY_H vq:b
m2:     MEASURE_Z vq:b, out:m2
free:   FREE_LQ vq:b
again:  ALLOC_LQ vq:b, n=1
h4:     APPLY_H vq:b
t4:     APPLY_TDG vq:b
c4:     APPLY_CZ vq:a, vq:b
h5:     APPLY_H vq:b
h6:     APPLY_H vq:a
m3:     MEASURE_Z vq:a, out:m3
m4:     MEASURE_Z vq:b, out:m4
end:    FREE_LQ vq:a, vq:b
