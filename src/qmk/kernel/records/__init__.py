"""What a job is: the job record, a worker's outcome, a result encoded once, usage,
verified programs.
"""
