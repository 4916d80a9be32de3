; A T gate on a data qubit by magic-state injection. The ancilla holds T|+>;
; after CNOT(data, anc) and measuring anc, data holds T|psi> (outcome 0) or
; T^dagger|psi> (outcome 1), which S turns into T|psi> up to a global phase.
; Here |psi> = |+>, so data ends in T|+>; after H, m_data is 0 with
; probability cos^2(pi/8) ~ 0.854.
.version 0.2
.description "T gate by magic-state injection with an S correction; P(m_data = 0) = cos^2(pi/8)"
.caps CAP_ALLOC CAP_MAGIC
.vqs data anc
.chs
.events m_anc m_data

.param profile = "logical:surface_code(d=9)"

alloc:     ALLOC_LQ vq:data, vq:anc, n=2, profile=profile
plus:      APPLY_H vq:data
magic:     INJECT_T_STATE vq:anc
cnot:      APPLY_CNOT vq:data, vq:anc
meas_anc:  MEASURE_Z vq:anc, out:m_anc
fix_s:     APPLY_S vq:data when ev:m_anc == 1
unplus:    APPLY_H vq:data
meas_data: MEASURE_Z vq:data, out:m_data
free:      FREE_LQ vq:data, vq:anc
