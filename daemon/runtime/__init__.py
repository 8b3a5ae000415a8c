"""The active instance: the firing policy, passes, executor, tracker and the outcomes seam."""
