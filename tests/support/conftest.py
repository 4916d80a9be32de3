"""The tests' helpers are collected for their doctests, except what runs elsewhere."""

#: Runs inside Bloqade's own venv (the peer of tests/devices/neutral_atom/test_bloqade_peer.py):
#: importing it here needs bloqade-circuit, which the main venv does not hold.
collect_ignore = ["bloqade_kernels.py"]
