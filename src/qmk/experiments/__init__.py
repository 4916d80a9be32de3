"""QEC memory experiments: syndrome-extraction circuits in stim, decoded by pymatching.

- :mod:`qmk.experiments.circuits` -- the rotated surface code, repetition code and
  Bacon-Shor memory circuits under a physical noise model.
- :mod:`qmk.experiments.memory` -- sampling, decoding, threshold fits and calibration
  (``qmk qec threshold`` / ``qmk qec calibrate``; ``docs/qec_experiments.md``).
- :mod:`qmk.experiments.plot` -- threshold plots (the ``plot`` extra).
"""
