"""Image observations from the sim's renderer for latent world models: a fixed camera, cheap flags.

Why a fixed camera rather than the env's default view: ``env.render()`` follows the robot, so the robot sits
in the middle of every frame and its position is invisible — a model could not learn pos_error from it. A
world-fixed camera looking at the task's goal makes motion visible, as a wall-mounted camera in a real lab
does. Shadows, reflections and the skybox are switched off: software (EGL/llvmpipe) rendering here is ~5×
faster without them and low-resolution frames lose nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tether.errors import TetherError


class FixedCamera:
    """Render (H, W, 3) uint8 frames of a MuJoCo-backed tether env from a fixed viewpoint."""

    def __init__(self, env: Any, width: int = 32, height: int = 32, *, lookat=(0.0, 0.0, 1.0), distance: float = 1.2,
                 azimuth: float = 90.0, elevation: float = -15.0) -> None:
        import mujoco

        sim = getattr(env.unwrapped, "sim", None)
        if sim is None or not hasattr(sim, "model") or not hasattr(sim, "data"):
            raise TetherError(f"FixedCamera needs a MuJoCo-backed tether env; got {type(env.unwrapped).__name__} "
                              f"with backend {type(sim).__name__}")
        if width < 8 or height < 8:
            raise TetherError(f"camera size {width}x{height}; expected at least 8x8")
        self._mj = mujoco
        self.sim = sim
        self.renderer = mujoco.Renderer(sim.model, height=height, width=width)
        self.cam = mujoco.MjvCamera()
        self.cam.lookat[:] = lookat
        self.cam.distance, self.cam.azimuth, self.cam.elevation = distance, azimuth, elevation

    def __call__(self) -> np.ndarray:
        r, f = self.renderer, self._mj.mjtRndFlag
        r.update_scene(self.sim.data, camera=self.cam)
        for flag in (f.mjRND_SHADOW, f.mjRND_REFLECTION, f.mjRND_SKYBOX):
            r.scene.flags[flag] = 0
        return r.render().copy()

    def close(self) -> None:
        self.renderer.close()


def collect_image_transitions(env_id: str, steps: int, *, size: int = 32, noise: tuple[float, float] = (0.1, 0.5),
                              seed: int = 0, **camera: Any) -> dict[str, np.ndarray]:
    """Expert-plus-noise transitions whose observations are (3, size, size) uint8 frames, time-ordered.

    Also returns the flat state observations under ``state``/``next_state`` so tests can relate the latent to
    the true state.
    """
    from tether.policies.envs import make_env

    if steps < 2:
        raise TetherError(f"collect steps={steps}; expected >= 2")
    env = make_env(env_id)
    cam = FixedCamera(env, size, size, **camera)
    rng = np.random.default_rng(seed)
    base = env.unwrapped
    out: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "done", "timeout", "state",
                                            "next_state")}
    try:
        state, _ = env.reset(seed=seed)
        frame = cam().transpose(2, 0, 1)
        sigma = rng.uniform(*noise)
        for _ in range(steps):
            a = np.clip(np.asarray(base.expert_action()) + sigma * rng.standard_normal(env.action_space.shape[0]),
                        -1, 1).astype(np.float32)
            nstate, r, term, trunc, _ = env.step(a)
            nframe = cam().transpose(2, 0, 1)
            for k, v in zip(out, (frame, a, r, nframe, term, trunc and not term, state, nstate)):
                out[k].append(v)
            state, frame = nstate, nframe
            if term or trunc:
                state, _ = env.reset(seed=int(rng.integers(1 << 31)))
                frame = cam().transpose(2, 0, 1)
                sigma = rng.uniform(*noise)
    finally:
        cam.close()
        env.close()
    res = {k: np.asarray(v) for k, v in out.items()}
    for k in ("action", "reward", "done", "timeout", "state", "next_state"):
        res[k] = res[k].astype(np.float32)
    return res
