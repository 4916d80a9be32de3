// Toffoli on two qubits in |+>, then a T on the target.
OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
creg c[3];
h q[0];
h q[1];
ccx q[0],q[1],q[2];
t q[2];
measure q -> c;
