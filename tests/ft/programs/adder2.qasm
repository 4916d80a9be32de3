// A two-bit ripple-carry adder (Cuccaro et al., quant-ph/0410184: MAJ and UMA blocks of
// Toffolis) computing b := a + b with the carry in z; a = (|0>+|1>)/sqrt2 + 2, b = 1 + 2 (|0>+|1>)/sqrt2.
OPENQASM 2.0;
include "qelib1.inc";
qreg c0[1];
qreg a[2];
qreg b[2];
qreg z[1];
creg sum[2];
creg carry[1];
creg ain[2];
h a[0];
x a[1];
x b[0];
h b[1];
// MAJ(c0, b0, a0)
cx a[0],b[0];
cx a[0],c0[0];
ccx c0[0],b[0],a[0];
// MAJ(a0, b1, a1)
cx a[1],b[1];
cx a[1],a[0];
ccx a[0],b[1],a[1];
cx a[1],z[0];
// UMA(a0, b1, a1)
ccx a[0],b[1],a[1];
cx a[1],a[0];
cx a[0],b[1];
// UMA(c0, b0, a0)
ccx c0[0],b[0],a[0];
cx a[0],c0[0];
cx c0[0],b[0];
measure b -> sum;
measure z -> carry;
measure a -> ain;
