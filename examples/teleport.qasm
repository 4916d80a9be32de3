OPENQASM 3.0;
include "stdgates.inc";
// Teleport ry(1.1)|0> from q[0] to q[2] with mid-circuit measurements and feed-forward.
// The key is "r c": r is q[2] measured after teleporting (P(r=1) = sin(0.55)^2 ~ 0.27),
// c the two Bell-measurement bits, each uniform.
qubit[3] q;
bit[2] c;
bit r;
ry(1.1) q[0];
h q[1];
cx q[1], q[2];
cx q[0], q[1];
h q[0];
c[0] = measure q[0];
c[1] = measure q[1];
if (c[1]) x q[2];
if (c[0]) z q[2];
r = measure q[2];
