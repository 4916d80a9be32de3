; A reversible segment and its uncompute. anc collects the parity a XOR b,
; APPLY_Z on anc kicks the phase (-1)^(a XOR b) back onto a and b, and the
; uncompute (the compute's CNOTs in reverse order) returns anc to |0>.
; From |++>, the kickback gives |-->, so after H: m_a = m_b = 1 and m_anc = 0.
.version 0.2
.description "Parity compute, phase kickback, exact uncompute: m_a = m_b = 1 and m_anc = 0"
.caps CAP_ALLOC
.vqs a b anc
.chs
.events m_a m_b m_anc

.param profile = "logical:surface_code(d=9)"

alloc:           ALLOC_LQ vq:a, vq:b, vq:anc, n=3, profile=profile
h_a:             APPLY_H vq:a
h_b:             APPLY_H vq:b

begin_compute:   BAR_REGION vq:a, vq:b, vq:anc, tag="compute"
compute_a:       APPLY_CNOT vq:a, vq:anc
compute_b:       APPLY_CNOT vq:b, vq:anc
kickback:        APPLY_Z vq:anc
begin_uncompute: BAR_REGION vq:a, vq:b, vq:anc, tag="uncompute"
uncompute_b:     APPLY_CNOT vq:b, vq:anc
uncompute_a:     APPLY_CNOT vq:a, vq:anc

unh_a:           APPLY_H vq:a
unh_b:           APPLY_H vq:b
meas_a:          MEASURE_Z vq:a, out:m_a
meas_b:          MEASURE_Z vq:b, out:m_b
meas_anc:        MEASURE_Z vq:anc, out:m_anc
free:            FREE_LQ vq:a, vq:b, vq:anc
