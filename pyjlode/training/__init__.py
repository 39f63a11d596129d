"""Training a language model: the configuration (config), the loop (loop), run folders (rundir), the run
log (runlog), checkpoints (state: what they hold; checkpoint_io: atomic files) and multi-process
helpers (distributed). The entry point is ``train(*build_configs(options))``.

Names load on first use, so the configuration can be read without importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "pyjlode.training.config", "build_configs": "pyjlode.training.config",
    "train": "pyjlode.training.loop", "TrainingStopped": "pyjlode.training.loop",
    "load_checkpoint": "pyjlode.training.state", "RunDir": "pyjlode.training.rundir",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static tools see ordinary imports
    from .config import TrainConfig, build_configs
    from .loop import TrainingStopped, train
    from .rundir import RunDir
    from .state import load_checkpoint
