; Two modules joined by a channel. The channel's Bell pair (a on module A, b on
; module B) teleports msg = S H|0> = |+i> from A to B. MEASURE_BELL(msg, a)
; produces the XX parity, then the ZZ parity (0 = even). With the pair in
; |Phi+>, odd ZZ parity leaves X on b and odd XX parity leaves Z, so b holds
; |+i> after the corrections and MEASURE_Y gives 0.
.version 0.2
.description "Teleport |+i> between two modules over a channel; m_b is 0 in ideal execution"
.caps CAP_ALLOC CAP_LINK
.vqs msg a b
.chs link
.events x_par z_par m_b

.param profile = "logical:surface_code(d=9)"

; undo the Paulis a Bell measurement leaves on the far half of a |Phi+> pair
.macro CORRECT_BELL vq:target ev:xx ev:zz
fix_x_{target}: COND_PAULI vq:{target}, in:{zz}, mask="X"
fix_z_{target}: COND_PAULI vq:{target}, in:{xx}, mask="Z"
.endmacro

alloc_a: ALLOC_LQ vq:msg, vq:a, n=2, profile=profile meta {"module": "A"}
alloc_b: ALLOC_LQ vq:b, n=1, profile=profile meta {"module": "B"}
open:    OPEN_CHAN vq:a, vq:b, ch:link, opts={"fidelity": 0.99, "type": "bell_pair"}
prep_h:  APPLY_H vq:msg
prep_s:  APPLY_S vq:msg
bell:    MEASURE_BELL vq:msg, vq:a, out:x_par, out:z_par
use:     USE_CHAN ch:link, semantic="teleport"
CORRECT_BELL vq:b, ev:x_par, ev:z_par
close:   CLOSE_CHAN ch:link
meas_b:  MEASURE_Y vq:b, out:m_b
free:    FREE_LQ vq:msg, vq:a, vq:b
