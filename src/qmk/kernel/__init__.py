"""The kernel: the supervisor that serves tenants.

Sessions, capabilities, admission and quotas, the epoch scheduler, jobs in SQLite,
worker processes that run :mod:`qmk.execution`, channels and the entanglement
firewall, and the audit log. ``qmk serve`` runs it (``docs/kernel.md``).
"""
