// A three-qubit approximate QFT (the pi/4 controlled phase dropped, so every rotation is a
// multiple of pi/4) on a Clifford+T-prepared input.
OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
creg c[3];
h q[0];
t q[0];
x q[1];
h q[2];
s q[2];
h q[2];
h q[2];
cu1(pi/2) q[1],q[2];
h q[1];
cu1(pi/2) q[0],q[1];
h q[0];
swap q[0],q[2];
measure q -> c;
