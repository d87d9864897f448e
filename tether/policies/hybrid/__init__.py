"""Fine-tuning with scarce real data plus an imperfect simulator: H2O and RLPD."""
