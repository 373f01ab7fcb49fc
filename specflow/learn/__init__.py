"""Self-supervised pretraining, linear probing and evaluation of phase labels."""
