"""Layer 0, the pure leaves every other layer builds on: errors and exit
statuses, atomic files, pixel conventions ([-1, 1] HR, [0, 1] LR, grey
levels), MATLAB bicubic, the per-pixel losses, progress, colour maps."""
