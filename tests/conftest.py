"""Test-wide settings: torch on one thread (far faster for small ops on these CPUs)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)
