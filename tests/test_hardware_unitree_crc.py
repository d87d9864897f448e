"""Unitree LowCmd CRC: the fast path equals the SDK's bit loop, the algorithm is CRC-32/MPEG-2, the packed
struct puts each field where the C struct has it, and any changed bit changes the checksum."""

import struct

import numpy as np

from tether.ros.protocols.unitree import A1_JOINTS, build_lowcmd, motor_indices
from tether.ros.protocols.unitree_crc import (
    LOWCMD_SIZE,
    LOWSTATE_FORMAT,
    crc32_core,
    crc32_mpeg2,
    crc_of_struct,
    lowcmd_crc,
    pack_lowcmd,
)
from tether.ros.types import deserialize, make, serialize, typestore


def test_catalogue_check_value() -> None:
    # CRC-32/MPEG-2 check value from the CRC catalogue (poly 04C11DB7, init FFFFFFFF, no reflection, xorout 0).
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7
    assert crc32_mpeg2(b"") == 0xFFFFFFFF


def test_fast_path_equals_sdk_bit_loop(rng: np.random.Generator) -> None:
    for n_words in (1, 2, 7, 202):
        packed = rng.integers(0, 256, 4 * (n_words + 1), dtype=np.uint8).tobytes()
        words = np.frombuffer(packed, dtype="<u4")[:-1]  # SDK: LE words, crc slot excluded
        assert crc_of_struct(packed) == crc32_core(words.tolist())
    assert crc32_core([]) == 0xFFFFFFFF


def test_linearity_and_bit_flip_detection(rng: np.random.Generator) -> None:
    a, b, c = (rng.integers(0, 256, 64, dtype=np.uint8) for _ in range(3))
    x = a ^ b ^ c
    assert crc32_mpeg2(a.tobytes()) ^ crc32_mpeg2(b.tobytes()) ^ crc32_mpeg2(c.tobytes()) == crc32_mpeg2(x.tobytes())
    base = rng.integers(0, 256, LOWCMD_SIZE, dtype=np.uint8)
    ref = crc_of_struct(base.tobytes())
    for bit in rng.choice((LOWCMD_SIZE - 4) * 8, size=200, replace=False):
        flipped = base.copy()
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert crc_of_struct(flipped.tobytes()) != ref


def test_lowcmd_struct_layout_and_crc_roundtrip() -> None:
    store = typestore()
    assert LOWCMD_SIZE == 812 and struct.calcsize(LOWSTATE_FORMAT) == 1180
    msg = make(store, "unitree_go/msg/LowCmd", head=[0xFE, 0xEF], level_flag=0xFF, bandwidth=7,
               sn=[1, 2], led=list(range(1, 13)), reserve=0xA5A5A5A5)
    msg.motor_cmd[3].kp = 1.5
    msg.motor_cmd[19].kd = -2.25
    packed = pack_lowcmd(msg)
    assert len(packed) == 812
    assert packed[:4] == bytes([0xFE, 0xEF, 0xFF, 0])
    assert struct.unpack_from("<2I", packed, 4) == (1, 2)
    assert struct.unpack_from("<H", packed, 20) == (7,)
    motor = lambda i: 24 + 36 * i  # noqa: E731  (mode u8 + 3 pad, 5 floats, 3 u32)
    assert struct.unpack_from("<f", packed, motor(3) + 4 + 12) == (1.5,)
    assert struct.unpack_from("<f", packed, motor(19) + 4 + 16) == (-2.25,)
    assert list(packed[788:800]) == list(range(1, 13))  # led after bms (4) and wireless_remote (40)
    assert struct.unpack_from("<I", packed, 804) == (0xA5A5A5A5,)
    # crc of the SDK bit loop over all words but the crc slot
    expected = crc32_core(np.frombuffer(packed, dtype="<u4")[:-1].tolist())
    assert lowcmd_crc(msg) == expected
    # the crc survives CDR and is independent of the old crc value
    msg.crc = 123
    assert lowcmd_crc(msg) == expected
    msg.crc = expected
    back = deserialize(store, serialize(store, msg), "unitree_go/msg/LowCmd")
    assert back.crc == expected and lowcmd_crc(back) == expected


def test_built_lowcmd_carries_valid_crc_and_changes_with_targets() -> None:
    store = typestore()
    idx = motor_indices(A1_JOINTS)
    a = build_lowcmd(store, np.zeros(12), idx, np.full(12, 20.0), np.full(12, 0.5))
    b = build_lowcmd(store, np.r_[1e-3, np.zeros(11)], idx, np.full(12, 20.0), np.full(12, 0.5))
    assert a.crc == lowcmd_crc(a) and b.crc == lowcmd_crc(b) and a.crc != b.crc
