"""What the kernel keeps: the SQLite store, the audit chain, group commit, the data
directory, migrations, results, artifacts, billing.
"""
