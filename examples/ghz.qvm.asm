; GHZ state on n qubits: H on the first, then a chain of CNOTs.
; Ideal outcomes are all 0 or all 1.
.version 0.2
.description "GHZ state on 5 qubits: H then a CNOT chain; all five Z outcomes agree"
.caps CAP_ALLOC

.param n = 5
.param profile = "logical:surface_code(d=9)"

.for i in range(n)
.vqs q{i}
.events m{i}
.endfor
.chs

.for i in range(n)
alloc_q{i}: ALLOC_LQ vq:q{i}, n=1, profile=profile
.endfor
h_q0: APPLY_H vq:q0
.for i in range(1, n)
cnot_q{i}: APPLY_CNOT vq:q{i - 1}, vq:q{i}
.endfor
.for i in range(n)
meas_q{i}: MEASURE_Z vq:q{i}, out:m{i}
.endfor
.for i in range(n)
free_q{i}: FREE_LQ vq:q{i}
.endfor
