"""What can be pruned (registry), masks as {name: bool array}, and pruning as pure functions."""
