"""Training: the settings, the trainer (CPT and pretraining), its launch under torchrun, SFT, DLO and growth."""
