"""Online RL for sim training: PPO and SAC."""
