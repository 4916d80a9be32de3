"""Front-ends: programs written elsewhere, lowered into QVM graphs.

:mod:`qmk.frontends.builder` is the common back end every front-end writes through.
"""
