; A qubit allocated and freed only where m = 1, and used in between on every run: on the
; run where m = 0 the X touches a qubit never allocated. The verifier cannot follow the
; guards (QV208 guarded-lifetime); qmk validate --prove finds the run (QV203, m=0).
.version 0.2
.caps CAP_ALLOC
.vqs a q
.events m

a:  ALLOC_LQ vq:a
h:  APPLY_H vq:a
m:  MEASURE_Z vq:a, out:m
q:  ALLOC_LQ vq:q when ev:m == 1
x:  APPLY_X vq:q
f:  FREE_LQ vq:q when ev:m == 1
fa: FREE_LQ vq:a
