; Bell pair: entangle two logical qubits and measure both in the Z basis.
; Ideal outcomes always agree (m0 == m1), each 0 or 1 with probability 1/2.
.version 0.2
.description "Bell pair: H and CNOT prepare (|00> + |11>)/sqrt2; the two Z measurements agree"
.caps CAP_ALLOC
.vqs q0 q1
.chs
.events m0 m1

.param profile = "logical:surface_code(d=9)"

alloc:   ALLOC_LQ vq:q0, vq:q1, n=2, profile=profile
h_q0:    APPLY_H vq:q0
cnot:    APPLY_CNOT vq:q0, vq:q1
meas_q0: MEASURE_Z vq:q0, out:m0
meas_q1: MEASURE_Z vq:q1, out:m1
free:    FREE_LQ vq:q0, vq:q1
