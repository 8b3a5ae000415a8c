"""Pure decisions: which graphs a rule selects, what to do with each and why, idle verdicts."""
