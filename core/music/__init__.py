"""The music side: clips to log-mel features, datasets and their splits, the synthetic
default dataset, input normalisation and the hand-crafted-feature baseline."""
