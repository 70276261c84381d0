"""mlsd-interviewer: entry points (settings, errors, the command line)."""
