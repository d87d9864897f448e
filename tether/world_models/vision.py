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
    """Render (H, W, 3) uint8 frames of one world of a MuJoCo batch from a fixed viewpoint."""

    def __init__(self, sim: Any, width: int = 32, height: int = 32, *, world: int = 0, lookat=(0.0, 0.0, 1.0),
                 distance: float = 1.2, azimuth: float = 90.0, elevation: float = -15.0) -> None:
        import mujoco

        if not hasattr(sim, "models") or not hasattr(sim, "batch"):
            raise TetherError(f"FixedCamera needs the MuJoCo batched core; got backend {type(sim).__name__}")
        if width < 8 or height < 8:
            raise TetherError(f"camera size {width}x{height}; expected at least 8x8")
        self._mj = mujoco
        self.sim, self.world = sim, int(world)
        self.model = sim.models[self.world]
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, height=height, width=width)
        self.cam = mujoco.MjvCamera()
        self.cam.lookat[:] = lookat
        self.cam.distance, self.cam.azimuth, self.cam.elevation = distance, azimuth, elevation

    def __call__(self) -> np.ndarray:
        r, f = self.renderer, self._mj.mjtRndFlag
        self.sim.batch.get_data(self.world, self.data)
        self._mj.mj_kinematics(self.model, self.data)
        r.update_scene(self.data, camera=self.cam)
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
    from tether.sim.vector import make_vec

    if steps < 2:
        raise TetherError(f"collect steps={steps}; expected >= 2")
    venv = make_vec(env_id, 1, autoreset=False)
    cam = FixedCamera(venv.executor.core.sim, size, size, **camera)
    rng = np.random.default_rng(seed)
    a_size = venv.single_action_space.shape[0]
    out: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "done", "timeout", "state",
                                            "next_state")}
    try:
        state, _ = venv.reset_batch(seed)
        frame = cam().transpose(2, 0, 1)
        sigma = rng.uniform(*noise)
        for _ in range(steps):
            a = np.clip(venv.expert_action() + sigma * rng.standard_normal((1, a_size)), -1, 1).astype(np.float32)
            res = venv.step_batch(a)
            nframe = cam().transpose(2, 0, 1)
            for k, v in zip(out, (frame, a[0], res.reward[0], nframe, res.terminated[0],
                                  res.truncated[0] and not res.terminated[0], state[0], res.obs[0])):
                out[k].append(v)
            state, frame = res.obs, nframe
            if res.done[0]:  # the next episode continues the same seeded stream
                state, _ = venv.reset_batch()
                frame = cam().transpose(2, 0, 1)
                sigma = rng.uniform(*noise)
    finally:
        cam.close()
        venv.close()
    res_ = {k: np.asarray(v) for k, v in out.items()}
    for k in ("action", "reward", "done", "timeout", "state", "next_state"):
        res_[k] = res_[k].astype(np.float32)
    return res_
