"""World models: learned dynamics (probabilistic ensembles, latent models), imagined rollouts, planners (MPPI, CEM) exposed as policies, and model-based training (MBPO, offline model-based RL)."""
