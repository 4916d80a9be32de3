; The teleport_guards protocol with the corrections as COND_PAULI nodes, which
; apply their Pauli when the XOR of their input events is 1. m_bob is always 0
; in ideal execution.
.version 0.2
.description "Teleportation with COND_PAULI corrections: m_bob is 0 whenever teleportation works"
.caps CAP_ALLOC
.vqs msg alice bob
.chs
.events m_msg m_alice m_bob

.param theta = 1.0
.param profile = "logical:surface_code(d=9)"

alloc:      ALLOC_LQ vq:msg, vq:alice, vq:bob, n=3, profile=profile
prepare:    APPLY_RY vq:msg, theta=theta
pair_h:     APPLY_H vq:alice
pair_cnot:  APPLY_CNOT vq:alice, vq:bob
fence_pair: FENCE_EPOCH

; Bell-basis measurement of (msg, alice)
bell_cnot:  APPLY_CNOT vq:msg, vq:alice
bell_h:     APPLY_H vq:msg
meas_msg:   MEASURE_Z vq:msg, out:m_msg
meas_alice: MEASURE_Z vq:alice, out:m_alice
fence_meas: FENCE_EPOCH

fix_x:      COND_PAULI vq:bob, in:m_alice, mask="X"
fix_z:      COND_PAULI vq:bob, in:m_msg, mask="Z"
unprepare:  APPLY_RY vq:bob, theta=-theta
meas_bob:   MEASURE_Z vq:bob, out:m_bob
free:       FREE_LQ vq:msg, vq:alice, vq:bob
