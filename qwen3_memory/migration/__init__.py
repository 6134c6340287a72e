"""Moving a live memory to another embedding space: jobs, runner, engine, strategies, verify, plan, backup."""
