"""Fine-tuning with scarce real data plus an imperfect simulator: H2O and RLPD.

Entry point: ``finetune(checkpoint, real, sim_env, algo="h2o"|"rlpd", steps=..., out=...) -> policy``;
the learners are ``tether.policies.hybrid.h2o.train_h2o`` and ``tether.policies.hybrid.rlpd.train_rlpd``.
"""

from tether.policies.hybrid.finetune import ALGOS, finetune

__all__ = ["ALGOS", "finetune"]
