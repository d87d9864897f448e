"""Fine-tuning with scarce real data plus an imperfect simulator: H2O and RLPD.

Entry point: ``finetune(checkpoint, real, sim_env, algo="h2o"|"rlpd", steps=..., out=...) -> policy``;
the learners are ``tether.policies.hybrid.h2o.train_h2o`` and ``tether.policies.hybrid.rlpd.train_rlpd``.

``finetune`` and ``ALGOS`` load on first use (torch comes with them), so importing this package, as
``tether finetune --help`` does for its command module, stays cheap. They are properties of the package so the
name ``finetune`` stays the function even after the submodule of the same name is imported (the import system
binds submodules on their parent; the setter below keeps the function).
"""

import importlib
import sys
import types


class _LazyPackage(types.ModuleType):
    @property
    def finetune(self):  # type: ignore[no-untyped-def]
        return importlib.import_module("tether.policies.hybrid.finetune").finetune

    @finetune.setter
    def finetune(self, _submodule: object) -> None:
        pass

    @property
    def ALGOS(self):  # type: ignore[no-untyped-def]  # noqa: N802
        return importlib.import_module("tether.policies.hybrid.finetune").ALGOS


sys.modules[__name__].__class__ = _LazyPackage

__all__ = ["ALGOS", "finetune"]
