"""The checksum Unitree firmware demands on every unitree_go LowCmd (and puts on LowState).

What the SDK does (unitree_ros2 ``get_crc`` / sdk2_python ``crc.py``): copy the message into the packed C
struct with natural alignment (812 bytes for LowCmd, layout below), read it as little-endian uint32 words,
drop the last word (the crc itself), and run ``crc32_core`` over the words. ``crc32_core`` shifts each word in
MSB first with polynomial 0x04C11DB7 and init 0xFFFFFFFF, no reflection, no final xor; that is exactly
CRC-32/MPEG-2 over the big-endian bytes of each word. We compute it through zlib (reflected CRC-32) on
bit-reversed bytes, which is C speed (~20 us per LowCmd) instead of ~4 ms for the bit loop in Python, and keep
the literal bit loop (:func:`crc32_core`) as the reference the tests compare against.

The firmware rejects a LowCmd whose crc does not match, so a wrong layout here means a robot that ignores
every command, which is why the struct layout is spelled out and tested field by field.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

# '<' = little-endian, no implicit padding, so every C padding byte is an explicit 'x'.
#   head[2] level_flag frame_reserve | sn[2] version[2] | bandwidth + 2 pad
#   20 x MotorCmd { mode + 3 pad, q dq tau kp kd, reserve[3] }
#   BmsCmd { off, reserve[3] } | wireless_remote[40] led[12] fan[2] gpio + 1 pad | reserve crc
LOWCMD_FORMAT = "<4B4IH2x" + "B3x5f3I" * 20 + "4B" + "55Bx2I"
LOWCMD_SIZE = struct.calcsize(LOWCMD_FORMAT)  # 812

#   head[2] level_flag frame_reserve | sn[2] version[2] | bandwidth + 2 pad
#   IMUState { quaternion[4] gyroscope[3] accelerometer[3] rpy[3] (13 f), temperature + 3 pad }
#   20 x MotorState { mode + 3 pad, q dq ddq tau_est q_raw dq_raw ddq_raw (7 f), temperature + 3 pad, lost, reserve[2] }
#   BmsState { version_high version_low status soc (4 B), current (i), cycle (H), bq_ntc[2] mcu_ntc[2] (4 b),
#              cell_vol[15] (15 H) } | foot_force[4] foot_force_est[4] (8 h) | tick | wireless_remote[40] bit_flag
#   (41 B) + 3 pad | adc_reel (f) | ntc1 ntc2 (2 b) + 2 pad | power_v power_a (2 f) | fan_frequency[4] (4 H) |
#   reserve crc
LOWSTATE_FORMAT = (
    "<4B4IH2x" + "13fb3x" + "B3x7fb3x3I" * 20 + "4BiH4b15H" + "8h" + "I" + "41B3x" + "f" + "2b2x"
    + "2f" + "4H" + "2I"
)

_REVERSE_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def crc32_core(words: Sequence[int]) -> int:
    """Literal port of Unitree's ``crc32_core(uint32_t* ptr, uint32_t len)``: the reference, slow."""
    crc = 0xFFFFFFFF
    poly = 0x04C11DB7
    for word in words:
        data = int(word) & 0xFFFFFFFF
        xbit = 1 << 31
        for _ in range(32):
            if crc & 0x80000000:
                crc = ((crc << 1) & 0xFFFFFFFF) ^ poly
            else:
                crc = (crc << 1) & 0xFFFFFFFF
            if data & xbit:
                crc ^= poly
            xbit >>= 1
    return crc


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, refin/refout false, xorout 0) at zlib speed.

    zlib computes the reflected CRC-32 with xorout 0xFFFFFFFF; feeding it bit-reversed bytes and
    bit-reversing (and un-xoring) its result gives the non-reflected variant.
    """
    r = zlib.crc32(data.translate(_REVERSE_BITS)) ^ 0xFFFFFFFF
    return int(f"{r:032b}"[::-1], 2)


def crc_of_struct(packed: bytes) -> int:
    """Unitree CRC of a packed struct: little-endian words, all but the last (the crc slot)."""
    if len(packed) % 4:
        raise ValueError(f"packed struct has {len(packed)} bytes; expected a multiple of 4")
    words = np.frombuffer(packed[:-4], dtype="<u4")
    return crc32_mpeg2(words.astype(">u4").tobytes())


def _u(v: Any) -> list[int]:
    return [int(x) for x in np.asarray(v).reshape(-1)]


def pack_lowcmd(msg: Any) -> bytes:
    """unitree_go/msg/LowCmd -> the 812-byte C struct the SDK checksums (crc slot as in the message)."""
    vals: list[Any] = [*_u(msg.head), int(msg.level_flag), int(msg.frame_reserve), *_u(msg.sn), *_u(msg.version),
                       int(msg.bandwidth)]
    if len(msg.motor_cmd) != 20:
        raise ValueError(f"LowCmd has {len(msg.motor_cmd)} motor_cmd entries; expected 20")
    for m in msg.motor_cmd:
        vals += [int(m.mode), float(m.q), float(m.dq), float(m.tau), float(m.kp), float(m.kd), *_u(m.reserve)]
    vals += [int(msg.bms_cmd.off), *_u(msg.bms_cmd.reserve)]
    vals += [*_u(msg.wireless_remote), *_u(msg.led), *_u(msg.fan), int(msg.gpio), int(msg.reserve), int(msg.crc)]
    return struct.pack(LOWCMD_FORMAT, *vals)


def lowcmd_crc(msg: Any) -> int:
    """The crc the firmware expects in ``msg.crc`` (the current value of msg.crc does not matter)."""
    return crc_of_struct(pack_lowcmd(msg))


def pack_lowstate(msg: Any) -> bytes:
    """unitree_go/msg/LowState -> its packed C struct (for checking/producing LowState crc in a served robot)."""
    imu = msg.imu_state
    vals: list[Any] = [*_u(msg.head), int(msg.level_flag), int(msg.frame_reserve), *_u(msg.sn), *_u(msg.version),
                       int(msg.bandwidth)]
    vals += [float(x) for x in (*imu.quaternion, *imu.gyroscope, *imu.accelerometer, *imu.rpy)]
    vals += [int(imu.temperature)]
    if len(msg.motor_state) != 20:
        raise ValueError(f"LowState has {len(msg.motor_state)} motor_state entries; expected 20")
    for m in msg.motor_state:
        vals += [int(m.mode), float(m.q), float(m.dq), float(m.ddq), float(m.tau_est), float(m.q_raw),
                 float(m.dq_raw), float(m.ddq_raw), int(m.temperature), int(m.lost), *_u(m.reserve)]
    b = msg.bms_state
    vals += [int(b.version_high), int(b.version_low), int(b.status), int(b.soc), int(b.current), int(b.cycle),
             *_u(b.bq_ntc), *_u(b.mcu_ntc), *_u(b.cell_vol)]
    vals += [*_u(msg.foot_force), *_u(msg.foot_force_est), int(msg.tick), *_u(msg.wireless_remote),
             int(msg.bit_flag), float(msg.adc_reel), int(msg.temperature_ntc1), int(msg.temperature_ntc2),
             float(msg.power_v), float(msg.power_a), *_u(msg.fan_frequency), int(msg.reserve), int(msg.crc)]
    return struct.pack(LOWSTATE_FORMAT, *vals)


def lowstate_crc(msg: Any) -> int:
    return crc_of_struct(pack_lowstate(msg))
