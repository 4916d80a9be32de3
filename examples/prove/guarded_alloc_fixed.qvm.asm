; guarded_alloc.qvm.asm with the X guarded as the allocation is: every run that uses the
; qubit has allocated it. qmk validate --prove proves it under both values of m.
.version 0.2
.caps CAP_ALLOC
.vqs a q
.events m

a:  ALLOC_LQ vq:a
h:  APPLY_H vq:a
m:  MEASURE_Z vq:a, out:m
q:  ALLOC_LQ vq:q when ev:m == 1
x:  APPLY_X vq:q when ev:m == 1
f:  FREE_LQ vq:q when ev:m == 1
fa: FREE_LQ vq:a
