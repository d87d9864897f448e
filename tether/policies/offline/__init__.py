"""Offline RL from fixed datasets: IQL, Diffusion-QL and one-step flow Q-learning."""
