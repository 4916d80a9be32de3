"""Where jobs run: the local worker pool and its wire and sandbox, the worker's side of an
attempt, the Dask pool.
"""
