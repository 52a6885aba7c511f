"""What the tasks share for DDP (rnnlab/tasks/common.py): whole-split metrics gathered from every rank, and
evaluation values averaged over the ranks. Two real processes (gloo, CPU)."""

import torch
import torch.multiprocessing as mp

from rnnlab.tasks.common import gathered, sync


def _rank(rank: int, store: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        items = [f"hyp {rank}.{i}" for i in range(rank + 1)]  # ranks hold different numbers of items
        torch.save(gathered(items), f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_gathered_collects_every_rank_in_rank_order(tmp_path):
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path / "result")), nprocs=2, join=True)
    expected = ["hyp 0.0", "hyp 1.0", "hyp 1.1"]
    for rank in range(2):
        assert torch.load(tmp_path / f"result.{rank}") == expected


def test_gathered_is_the_identity_without_torch_distributed():
    items = ["a", "b"]
    assert gathered(items) is items


def test_evaluation_values_are_synced_training_steps_are_not():
    assert sync("val") == {"sync_dist": True} and sync("test") == {"sync_dist": True}
    assert sync("train") == {"sync_dist": False}
