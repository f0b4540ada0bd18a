"""What stock fairseq needs to train with several processes started by `torchrun` on CPUs (gloo).

fairseq 0.12 assumes one GPU per process, and three of its steps break on a machine without CUDA:

1. Its default `--distributed-world-size` is the number of GPUs, i.e. 1, and with world size 1 it
   ignores torchrun's environment: every process then trains alone, all writing the same checkpoint.
   Here torchrun's `WORLD_SIZE` is taken as the world size, as fairseq already does on GPUs.
2. Adopting torchrun's ranks computes `rank % torch.cuda.device_count()` (ZeroDivisionError); on CPU
   the device id is 0.
3. `--ddp-backend pytorch_ddp` (the default) passes `device_ids=[device_id]` to torch's
   DistributedDataParallel, which torch refuses for CPU modules; for those it is left out.

The default `--distributed-backend nccl` needs GPUs: without CUDA gloo is used (with a warning).
Each fix wraps the one fairseq function or class that needs it, through the module-level name fairseq
calls it by, and changes nothing when CUDA is available or when the job is not started by torchrun.
Importing this module applies the fixes (idempotent).
"""
import logging
import os
from typing import Any

import fairseq.distributed.utils as distributed_utils
import fairseq.models.distributed_fairseq_model as distributed_fairseq_model
import torch
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)

# What torchrun (and torch.distributed.launch) set for every process it starts; fairseq checks the same.
TORCHRUN_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")

_stock_infer_init_method = distributed_utils.infer_init_method
_stock_launch_init = distributed_utils._infer_torch_distributed_launch_init


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (its rendezvous variables are all set)."""
    return all(name in os.environ for name in TORCHRUN_ENV)


def infer_init_method(cfg: Any, force_distributed: bool = False) -> None:
    """fairseq's `infer_init_method`, with torchrun's world size and gloo when there is no CUDA."""
    if cfg.distributed_init_method is None and not cfg.tpu and launched_by_torchrun():
        world_size = int(os.environ["WORLD_SIZE"])
        if world_size > 1 and cfg.distributed_world_size != world_size:
            logger.info("torchrun started %d processes: --distributed-world-size %d -> %d",
                        world_size, cfg.distributed_world_size, world_size)
            cfg.distributed_world_size = world_size
        if world_size > 1 and cfg.distributed_backend == "nccl" and not torch.cuda.is_available():
            logger.warning("no CUDA device: --distributed-backend nccl -> gloo")
            cfg.distributed_backend = "gloo"
    _stock_infer_init_method(cfg, force_distributed)


def infer_torch_distributed_launch_init(cfg: Any) -> None:
    """fairseq's adoption of torchrun's rank and world size; on CPU the device id is 0."""
    if torch.cuda.device_count() > 0:
        _stock_launch_init(cfg)
        return
    cfg.distributed_init_method = "env://"
    cfg.distributed_world_size = int(os.environ["WORLD_SIZE"])
    cfg.distributed_rank = int(os.environ["RANK"])
    cfg.device_id = 0
    cfg.distributed_no_spawn = True  # torchrun started the processes


class DeviceAwareDistributedDataParallel(DistributedDataParallel):
    """torch's DistributedDataParallel without `device_ids`/`output_device` for a module on the CPU."""

    def __init__(self, module: torch.nn.Module, device_ids=None, output_device=None, **kwargs: Any) -> None:
        if all(param.device.type == "cpu" for param in module.parameters()):
            device_ids, output_device = None, None
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)


def apply() -> None:
    """Install the three fixes in fairseq's modules (idempotent)."""
    distributed_utils.infer_init_method = infer_init_method
    distributed_utils._infer_torch_distributed_launch_init = infer_torch_distributed_launch_init
    distributed_fairseq_model.DistributedDataParallel = DeviceAwareDistributedDataParallel


apply()
