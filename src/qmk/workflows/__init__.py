"""Job templates and workflows: a declarative file of steps, sweeps, dependencies, retries.

A workflow file (TOML, or YAML with PyYAML) describes steps; each step is a program with
run options and an optional parameter sweep, so one step is one job or a grid of them.
:func:`~qmk.workflows.spec.load` reads it (:mod:`qmk.workflows.spec`),
:func:`~qmk.workflows.runner.run_workflow` runs it in-process or against a kernel
(JSON-RPC on a socket, or the REST API), steps in dependency order with retries, and
:func:`~qmk.workflows.report.write_results` writes JSON, CSV and PNG plots.
``qmk workflow run FILE`` is the command; docs/workflows.md the reference.
"""
