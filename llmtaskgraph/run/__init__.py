"""Running a graph: the scheduler, stage running, run options and reports, events, checkpoints, progress."""
