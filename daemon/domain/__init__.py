"""The vocabulary every layer shares: graphs, jobs, actions, statuses, the clock, the API protocols."""
