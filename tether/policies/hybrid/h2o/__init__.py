"""H2O: dynamics-aware hybrid offline-and-online RL (Niu et al., 2022) on top of Tether's SAC learner.

The setting is the sim-to-real one: a small fixed dataset from the real robot, and a simulator whose dynamics
are close but wrong. Training on both at once, H2O trusts simulated transitions only where the simulator
agrees with reality, measured by two real-vs-sim classifiers (as in the authors' ``SimpleSAC/sim2real_sac.py``):

- ``d_sa(s, a)`` and ``d_sas(s, a, s')`` with logits ``l_sa`` and ``l_sa + l_adv``. With balanced batches,
  ``l_adv = log P_real(s'|s, a) - log P_sim(s'|s, a)``: the dynamics log-ratio. Inputs get Gaussian noise
  (0.1 in normalised units) so the classifiers do not separate the two buffers on irrelevant detail.
- Critic loss = TD on real data + TD on simulated data weighted by the clipped ratio ``exp(l_adv)`` in
  [1e-5, 1] (simulated transitions that reality would not produce stop teaching Q)
  + ``cql_weight`` × (Σ_i ω_i logsumexp_a Q(s_i, a) over simulated states − mean Q on real data), where
  ω ∝ u(s, a), the estimated KL(P_sim || P_real) from ``gap_samples`` next states drawn around the simulated
  one. Q-values are pushed down where the simulator is least trustworthy and up on real data.
- Actor and temperature: SAC on the states of both buffers.

Fine-tuning a loaded checkpoint (``FINETUNE_DEFAULTS``, what ``finetune()`` uses) adds guards, because a fresh
critic steering a good actor mostly undoes it: critic warm-up on real data, then H2O critic updates with the actor
frozen until the TD loss settles; a TD3+BC-style actor loss anchored to the start actor with a low learning rate;
small Gaussian exploration noise in the simulator; and a final choice between actor snapshots and the parent by
the critic's value on a held-out tail of the real data (never the test episodes), with a margin and a cap on how
far the mean action may move. When no snapshot clears it, the parent itself comes back unchanged.

Small nets and single-threaded torch keep it CPU-sized; every random choice is seeded.
"""

from tether.policies.hybrid.h2o.classifier import DynamicsGapClassifier
from tether.policies.hybrid.h2o.config import FINETUNE_DEFAULTS, H2OConfig
from tether.policies.hybrid.h2o.learner import H2O
from tether.policies.hybrid.h2o.loop import train_h2o, train_h2o_cli

__all__ = ["FINETUNE_DEFAULTS", "H2O", "H2OConfig", "DynamicsGapClassifier", "train_h2o", "train_h2o_cli"]
