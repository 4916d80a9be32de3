"""Jobs run: the supervisor (dispatch, runs, timeouts, preemption), checkpoints, the shared
machine that schedules them in machine time, and the workflow triggers.
"""
