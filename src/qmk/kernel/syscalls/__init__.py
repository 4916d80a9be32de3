"""The syscalls' work, by concern, behind the facade (:mod:`qmk.kernel.service`): sessions,
delegations, jobs, channels, the machine and usage.
"""
