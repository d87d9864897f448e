"""World models: learned dynamics (probabilistic ensembles, latent models), imagined rollouts, planners (MPPI, CEM) exposed as policies, and model-based training (MBPO, offline model-based RL).

Modules (import the one you need; nothing heavy is imported here):

- ``base``: the WorldModel / PlanningModel protocols, ``Trajectory`` and ``imagine`` (MOPO penalty, truncation).
- ``ensemble``: ``EnsembleWorldModel`` (PETS/MBPO probabilistic ensemble; safetensors + JSON).
- ``latent``: ``LatentWorldModel`` (TD-MPC2-style; MLP or conv encoder for rendered images).
- ``planners``: ``Planner`` (MPPI / CEM as a Policy; checkpoint kind "planner").
- ``mbrl``: ``train_mbpo``, ``train_offline_mbrl`` with RAVL critics (``EnsembleSAC``).
- ``rewards``: known task rewards as torch functions; ``true_dynamics``: exact models and a point mass.
- ``collect``, ``vision``: real transitions (state or fixed-camera images) from the sim; ``metrics``: errors vs
  baselines; ``commands`` / ``algos``: ``tether wm`` and ``tether train --algo mbpo|mppi|offline-mbrl``.
"""
