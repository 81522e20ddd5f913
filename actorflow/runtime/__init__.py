"""The actor runtime: the supervisor, the scheduler actor and the process actors."""
