"""Count the unreadable samples a run skipped, report them in metrics.jsonl, and stop past a share.

The batch carries `skipped` (how many samples were replaced while building it) and `skipped_from` (the shard
of each); the trainer feeds every batch it consumes to `SkipTally.add`, so counts follow what training used,
not what workers prefetched. `report()` is called on every rank at the same steps (it all-reduces).
"""
from __future__ import annotations

import collections
from typing import Dict

import torch
import torch.distributed as dist

from ..errors import DataError

# The share is measured over at least this many draws, so one bad sample in the first batch of a run does
# not stop it; past that the share is skipped / (consumed + skipped).
MIN_DRAWS = 1000


class SkipTally:
    def __init__(self, max_share: float = 1.0):
        self.max_share = max_share
        self.skipped = self.drawn = 0            # global totals at the last report (and from the checkpoint)
        self._skipped = self._drawn = 0          # this rank's counts not yet all-reduced
        self._window = 0                         # global skips since the last report
        self.shards: collections.Counter = collections.Counter()

    def add(self, batch: dict) -> None:
        n = int(batch["skipped"]) if "skipped" in batch else 0
        self._skipped += n
        self._drawn += len(batch.get("key", ())) + n
        self.shards.update(batch.get("skipped_from", ()))

    def _flush(self) -> None:
        """Fold this rank's pending counts into the global totals (a collective: all ranks call it)."""
        t = torch.tensor([self._skipped, self._drawn], dtype=torch.float64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            if dist.get_backend() == "nccl":  # nccl reduces CUDA tensors only
                t = t.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(t)
            t = t.cpu()
        self.skipped += int(t[0])
        self.drawn += int(t[1])
        self._window += int(t[0])
        self._skipped = self._drawn = 0

    def report(self) -> Dict[str, float]:
        """{'data_skipped': skipped since the last report, 'data_skipped_total': ...} summed over ranks;
        raises DataError (on every rank alike) when the share passes max_share."""
        self._flush()
        window, self._window = self._window, 0
        if self.skipped > self.max_share * max(self.drawn, MIN_DRAWS):
            worst = (f"most of them in {self.shards.most_common(1)[0][0]}" if self.shards
                     else "none of them on this rank")
            raise DataError(f"{self.skipped} of {self.drawn} samples drawn were unreadable and skipped "
                            f"(share {self.skipped / max(self.drawn, 1):.3f} > data.max_skip_share "
                            f"{self.max_share}), {worst}; repair or drop that shard, or raise "
                            f"data.max_skip_share")
        return {"data_skipped": window, "data_skipped_total": self.skipped}

    def summary(self) -> str:
        """The end-of-run line (totals at the last report): how many samples were skipped, and where most were."""
        where = f", most in {self.shards.most_common(1)[0][0]}" if self.shards else ""
        return (f"data: {self.skipped} unreadable sample(s) skipped and replaced over the run (of {self.drawn} "
                f"drawn{where}); data_skipped_total in metrics.jsonl")

    def state(self) -> torch.Tensor:
        """Global totals for the checkpoint (a collective, like save itself)."""
        self._flush()
        return torch.tensor([self.skipped, self.drawn], dtype=torch.long)

    def load_state(self, state: torch.Tensor) -> None:
        self.skipped, self.drawn = int(state[0]), int(state[1])
