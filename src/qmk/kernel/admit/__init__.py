"""What is let in and where it runs: admission, CPU budgets, the result cache, failure
policies and placement, channels, spans over modules, the run queue, the assistant.
"""
