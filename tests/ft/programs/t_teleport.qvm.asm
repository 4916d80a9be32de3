; Teleport T|+> from msg to bob through a Bell pair (alice, bob), the corrections as
; guarded gates, then a controlled S and H to show the state: after the corrections bob
; holds T|+>; T^dag then H returns it to |0>, so m_bob is 0 in ideal execution.
.version 0.2
.description "T|+> teleported with guarded Pauli corrections; m_bob is 0 in ideal execution"
.caps CAP_ALLOC
.vqs msg alice bob
.chs
.events m_msg m_alice m_bob

alloc:      ALLOC_LQ vq:msg, vq:alice, vq:bob, n=3
prepare_h:  APPLY_H vq:msg
prepare_t:  APPLY_T vq:msg
pair_h:     APPLY_H vq:alice
pair_cnot:  APPLY_CNOT vq:alice, vq:bob
bell_cnot:  APPLY_CNOT vq:msg, vq:alice
bell_h:     APPLY_H vq:msg
meas_msg:   MEASURE_Z vq:msg, out:m_msg
meas_alice: MEASURE_Z vq:alice, out:m_alice
fix_x:      APPLY_X vq:bob when ev:m_alice == 1
fix_z:      APPLY_Z vq:bob when ev:m_msg == 1
undo_t:     APPLY_TDG vq:bob
undo_h:     APPLY_H vq:bob
meas_bob:   MEASURE_Z vq:bob, out:m_bob
free:       FREE_LQ vq:msg, vq:alice, vq:bob
