"""Which sequences run each step and where their KV lives: sequences, the scheduler that owns
their state, the paged block manager and the prefix cache behind it."""
