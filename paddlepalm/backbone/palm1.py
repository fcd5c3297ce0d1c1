"""Reader for PALM 1.x/2.x (static-graph Paddle) parameter folders: one file per variable.

Each file is Paddle's legacy tensor serialisation: ``uint32`` version, ``uint64`` LoD level
(each level: ``uint64`` byte count + offsets), ``uint32`` tensor version, ``int32`` size of a
``TensorDesc`` protobuf (field 1: data type enum, field 2: dims), then the raw little-endian
data. Paddle 3 no longer reads these files, so the few lines of parsing live here.
"""
import os
import struct
from typing import Dict, List, Tuple

import numpy as np

from paddlepalm.errors import CheckpointError

# paddle VarType enum -> numpy dtype
_DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32,
           6: np.float64, 20: np.uint8, 21: np.int8}


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _tensor_desc(buf: bytes) -> Tuple[int, List[int]]:
    dtype, dims, pos = None, [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, pos = _varint(buf, pos)
        elif field == 2 and wire == 0:
            dim, pos = _varint(buf, pos)
            dims.append(dim)
        elif field == 2 and wire == 2:  # packed dims
            length, pos = _varint(buf, pos)
            end = pos + length
            while pos < end:
                dim, pos = _varint(buf, pos)
                dims.append(dim)
        else:
            raise ValueError("unexpected protobuf field %d (wire type %d)" % (field, wire))
    if dtype is None:
        raise ValueError("tensor description has no data type")
    return dtype, dims


def read_tensor_file(path: str) -> np.ndarray:
    """Read one legacy Paddle parameter file."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        pos = 4  # version
        (lod_level,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        for _ in range(lod_level):
            (size,) = struct.unpack_from("<Q", data, pos)
            pos += 8 + size
        pos += 4  # tensor version
        (desc_size,) = struct.unpack_from("<i", data, pos)
        pos += 4
        dtype, dims = _tensor_desc(data[pos:pos + desc_size])
        pos += desc_size
        np_dtype = np.dtype(_DTYPES[dtype])
        count = int(np.prod(dims)) if dims else 1
        if len(data) - pos != count * np_dtype.itemsize:
            raise ValueError("expected %d bytes of data for shape %s, found %d" % (
                count * np_dtype.itemsize, dims, len(data) - pos))
        return np.frombuffer(data, dtype=np_dtype, count=count, offset=pos).reshape(dims).copy()
    except (struct.error, KeyError, ValueError, IndexError) as e:
        raise CheckpointError("%s: not a Paddle parameter file (%s)" % (path, e)) from None


def read_param_dir(path: str) -> Dict[str, np.ndarray]:
    """All parameter files in ``path`` (skipping config/vocab files and hidden files)."""
    state = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if name.startswith(".") or not os.path.isfile(full) or name.endswith((".json", ".txt", ".md")):
            continue
        state[name] = read_tensor_file(full)
    if not state:
        raise CheckpointError("%s: no parameter files" % path)
    return state
