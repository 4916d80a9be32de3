"""Who may do what and what proves it: tenant keys at rest, seals, delegations, sessions,
attestation.
"""
