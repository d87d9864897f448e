"""Scale-out backends: collect rollouts and run evaluations on other machines.

Why a separate subpackage: the default Tether install runs on one machine with no cluster software; a Ray
cluster is an opt-in (``tether train/eval --ray ADDRESS``). Nothing here imports ``ray`` at module level, so
importing ``tether.scale`` (or anything that imports it) never starts or connects to a Ray process; only
the functions that are handed an address do.

- :mod:`tether.scale.cluster`: joining a cluster (``--ray ADDRESS``; ``local`` binds 127.0.0.1 only).
- :mod:`tether.scale.ray_executor`: the vector API's ``executor="ray"`` (world slices in actors), which
  training (``tether train --ray``) and evaluation (``tether eval --ray``) use by name; nothing else in
  Tether imports this package.
"""
