"""Small utilities every part shares: strict config reading with lines, durations, logging,
the event loop, and the default job names. Imports nothing else of the project."""
