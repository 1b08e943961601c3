"""torch.cuda of the stand-in torch (tests only): ``STANDIN_CUDA=0`` means no GPU."""

import os


def is_available():
    return os.environ.get("STANDIN_CUDA", "1") == "1"


def manual_seed_all(seed):
    pass


def current_device():
    return 0


def get_device_name(device=None):
    return "stand-in GPU"
