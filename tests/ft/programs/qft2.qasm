// A two-qubit QFT on a Clifford+T-prepared input: every rotation is a multiple of pi/4.
OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
t q[0];
h q[0];
x q[1];
h q[1];
cu1(pi/2) q[0],q[1];
h q[0];
swap q[0],q[1];
measure q -> c;
