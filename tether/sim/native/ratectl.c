/* Tether: the quadrotor's onboard body-rate controller as a MuJoCo control callback (mjcb_control).
 *
 * Why C: the controller runs at the physics rate (every substep). Written in Python it costs one round trip
 * out of MuJoCo per substep, which caps a batch of small vehicles at about half the physics speed; as a
 * callback it runs inside mj_step, on mujoco.batch's worker threads, with the GIL released.
 *
 * It is the same arithmetic as tether.sim.robots.quadrotor.RateController (the numpy reference; a test holds
 * the two to 1e-12). It acts only on models that carry a numeric field named "tether_ratectl" first (the
 * constants, in RateController.parameters() order, then the dof address of the base's angular velocity)
 * and nuserdata >= TETHER_USERDATA; every other model passes through untouched.
 *
 * d->userdata layout (part of mjSTATE_INTEGRATION, so it travels with each simulation's state):
 *   [0]      collective thrust setpoint (N)      [1..3]  body-rate setpoint (rad/s)
 *   [4..6]   integral of the rate error (deg)    [7..9]  previous rate error (deg/s)
 *   [10]     time of the last update: a forward pass at the same time (mj_forward after a reset) leaves the
 *            controller state alone, so the PID advances exactly once per physics step.
 */
#include <math.h>
#include <string.h>
#include <mujoco/mujoco.h>

#define TETHER_USERDATA 11
#define TETHER_NPARAM 32 /* 5*3 + 16 + 1 */

static const char kName[] = "tether_ratectl";

void tether_ratectl(const mjModel* m, mjData* d) {
  if (m->nnumeric < 1 || m->nuserdata < TETHER_USERDATA || m->nu < 4) return;
  if (strcmp(m->names + m->name_numericadr[0], kName) != 0) return;
  if (m->numeric_size[0] < TETHER_NPARAM + 1) return;
  mjtNum* u = d->userdata;
  if (u[10] == d->time) return;
  u[10] = d->time;
  const mjtNum* p = m->numeric_data + m->numeric_adr[0];
  const mjtNum *kp = p, *ki = p + 3, *kd = p + 6, *ilim = p + 9, *c2t = p + 12, *alloc = p + 15;
  const mjtNum max_thrust = p[31];
  const int dof = (int)p[32];
  const mjtNum dt = m->opt.timestep;
  const mjtNum deg = 180.0 / 3.14159265358979323846;
  mjtNum wrench[4];
  wrench[0] = u[0];
  for (int i = 0; i < 3; i++) {
    mjtNum err = (u[1 + i] - d->qvel[dof + i]) * deg;
    mjtNum integ = u[4 + i] + err * dt;
    integ = integ < -ilim[i] ? -ilim[i] : (integ > ilim[i] ? ilim[i] : integ);
    mjtNum deriv = (err - u[7 + i]) / dt;
    u[4 + i] = integ;
    u[7 + i] = err;
    wrench[1 + i] = (kp[i] * err + ki[i] * integ + kd[i] * deriv) * c2t[i];
  }
  for (int r = 0; r < 4; r++) {
    mjtNum t = 0;
    for (int c = 0; c < 4; c++) t += alloc[4 * r + c] * wrench[c];
    d->ctrl[r] = t < 0 ? 0 : (t > max_thrust ? max_thrust : t);
  }
}
