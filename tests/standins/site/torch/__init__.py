"""A stand-in for the little of torch that mmeval's backends and the stand-in models touch (tests only).

It plays the "site-packages" of a model's environment in the worker tests, so those run on a bare
interpreter (``python -S``: no numpy, no torch) in a fraction of a second. Tensors hold a flat list of
floats (or only a shape, for the big image tensors nobody reads). ``STANDIN_CUDA=0`` makes
``torch.cuda.is_available()`` false.
"""

import os

from torch import cuda, nn  # noqa: F401 - torch.cuda and torch.nn, as the real package exposes them

__version__ = "0.0+standin"
_SEED = [0]


class dtype:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "torch." + self.name


float16 = half = dtype("float16")
bfloat16 = dtype("bfloat16")
float32 = dtype("float32")
long = int64 = dtype("int64")


class version:
    cuda = "standin"


def _strides(shape):
    out, step = [], 1
    for size in reversed(shape):
        out.append(step)
        step *= size
    return list(reversed(out))


def _count(shape):
    n = 1
    for s in shape:
        n *= s
    return n


class Array:
    """What ``Tensor.numpy()`` gives here: a shape and nested lists."""

    def __init__(self, data, shape):
        self.data, self.shape = data, tuple(shape)

    def tolist(self):
        return Tensor(self.data, self.shape).tolist()

    def max(self):
        return max(self.data)


class Tensor:
    def __init__(self, data=None, shape=None, dtype=float32, device="cpu", meta=None):
        if data is not None and shape is None:
            data, shape = _flat(data)
        self.data = None if data is None else [float(x) for x in data]
        self.shape = tuple(shape)
        self.dtype, self.device, self.meta = dtype, device, meta or {}
        if self.data is not None and len(self.data) != _count(self.shape):
            raise ValueError(f"{len(self.data)} values for shape {self.shape}")

    def _like(self, data=None, shape=None, **changes):
        out = Tensor(self.data if data is None else data, self.shape if shape is None else shape,
                     changes.get("dtype", self.dtype), changes.get("device", self.device), dict(self.meta))
        return out

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return len(self.shape)

    def __len__(self):
        return self.shape[0]

    def detach(self):
        return self._like()

    def cpu(self):
        return self._like(device="cpu")

    def cuda(self, device=None):
        return self._like(device="cuda")

    def float(self):
        return self._like(dtype=float32)

    def half(self):
        return self._like(dtype=float16)

    def to(self, *args, dtype=None, device=None, **kwargs):
        for arg in args:
            if isinstance(arg, globals()["dtype"]):
                dtype = arg
            else:
                device = arg
        return self._like(dtype=dtype or self.dtype, device=device or self.device)

    def numpy(self):
        if self.device != "cpu":
            raise TypeError("can't convert cuda tensor to numpy: use .cpu() first")
        return Array(list(self.data), self.shape)

    def tolist(self):
        def build(offset, dims):
            if not dims:
                return self.data[offset]
            step = _count(dims[1:])
            return [build(offset + i * step, dims[1:]) for i in range(dims[0])]

        return build(0, list(self.shape))

    def reshape(self, *shape):
        shape = list(shape[0] if len(shape) == 1 and isinstance(shape[0], (list, tuple)) else shape)
        if -1 in shape:
            known = _count([s for s in shape if s != -1])
            shape[shape.index(-1)] = _count(self.shape) // known
        return self._like(shape=tuple(shape))

    view = reshape

    def unsqueeze(self, dim):
        shape = list(self.shape)
        shape.insert(dim if dim >= 0 else len(shape) + dim + 1, 1)
        return self._like(shape=tuple(shape))

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        shape, strides, offset = list(self.shape), _strides(self.shape), 0
        for i, k in enumerate(index):
            offset += (k % shape[i]) * strides[i]
        rest = shape[len(index):]
        if self.data is None:
            return Tensor(None, rest, self.dtype, self.device, dict(self.meta))
        return Tensor(self.data[offset:offset + _count(rest)], rest, self.dtype, self.device, dict(self.meta))

    def max(self):
        return Tensor([max(self.data)], (), self.dtype, self.device)

    def item(self):
        return self.data[0]

    def __float__(self):
        return float(self.data[0])

    def __int__(self):
        return int(self.data[0])


def _flat(value):
    if isinstance(value, (list, tuple)):
        if not value:
            return [], (0,)
        parts = [_flat(v) for v in value]
        return [x for data, _ in parts for x in data], (len(value),) + parts[0][1]
    return [value], ()


def tensor(data, dtype=float32, device="cpu"):
    return Tensor(data, None, dtype, device)


def log_softmax(x, dim=-1):
    import math

    top = max(x.data)
    total = math.log(sum(math.exp(v - top) for v in x.data)) + top
    return x._like(data=[v - total for v in x.data])


def manual_seed(seed):
    _SEED[0] = int(seed)


def initial_seed():
    return _SEED[0]


def load(f, map_location=None, **kwargs):
    """A checkpoint placeholder: the file must exist; its content is not read."""
    if not os.path.exists(f):
        raise FileNotFoundError(2, "No such file or directory", f)
    return {}


class no_grad:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, func):
        return func
