"""Exit codes a scheduler can act on (documented in README)."""

OK = 0  # everything asked for was done
WORK_FAILED = 1  # some work failed; the run report says which; a re-run picks it up
CONFIG_ERROR = 2  # settings or command line are wrong; nothing was attempted
INTERRUPTED = 130  # stopped by Ctrl-C / SIGINT
