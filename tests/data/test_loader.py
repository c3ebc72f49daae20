"""build_loader: batches depend only on (seed, epoch, position): not on workers, resumption or the rank split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pysalient.data import (
    CocoInstanceDataset,
    Compose,
    RandomCrop,
    RandomFlip,
    ResizeShortestEdge,
    build_loader,
    iterate_batches,
    synthesize,
)
from pysalient.data.collate import collate
from pysalient.inputs import InputSpec


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> CocoInstanceDataset:
    paths = synthesize(tmp_path_factory.mktemp("synth"), train=10, size=64, seed=2)
    augment = Compose(
        [ResizeShortestEdge((40, 48, 56), 100), RandomFlip(0.5), RandomCrop("relative_range", (0.6, 0.6))]
    )
    return CocoInstanceDataset(paths["train"], transforms=augment)


def _signature(batch: list) -> list:
    return [
        (s["file_name"], s["image"].shape, s["image"].tobytes(), s["masks"].tobytes(), s["labels"].tolist())
        for s in batch
    ]


def _epochs(loader, epochs: int) -> list:
    batches = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        batches.extend(_signature(batch) for batch in loader)
    return batches


def test_workers_do_not_change_the_batches(dataset) -> None:
    serial = build_loader(dataset, batch_size=3, shuffle=True, workers=0, seed=4)
    parallel = build_loader(dataset, batch_size=3, shuffle=True, workers=2, seed=4)
    first = _epochs(serial, 2)
    assert len(first) == 6 and len(serial) == 3
    assert first == _epochs(parallel, 2)
    del parallel
    names = [[item[0] for item in batch] for batch in first]
    assert names[:3] != names[3:]  # a new order each epoch
    shapes = {item[1] for batch in first for item in batch}
    assert len(shapes) > 3  # multi-scale resize and crops are active
    other_seed = _epochs(build_loader(dataset, batch_size=3, shuffle=True, workers=0, seed=5), 1)
    assert other_seed != first[:3]


def test_epochs_advance_by_themselves_and_replay_with_set_epoch(dataset) -> None:
    loader = build_loader(dataset, batch_size=2, shuffle=True, workers=0, seed=1)
    epoch0 = [_signature(batch) for batch in loader]
    epoch1 = [_signature(batch) for batch in loader]
    assert epoch0 != epoch1
    loader.sampler.set_epoch(1)
    assert [_signature(batch) for batch in loader] == epoch1
    ordered = build_loader(dataset, batch_size=2, shuffle=False, workers=0, drop_last=False)
    batches = list(ordered)
    assert [s["image_id"] for batch in batches for s in batch] == list(range(1, 11))
    assert all(isinstance(batch, list) for batch in batches)


def test_resuming_mid_epoch_gives_the_uninterrupted_stream(dataset) -> None:
    loader = build_loader(dataset, batch_size=3, shuffle=True, workers=0, seed=9)
    stream = iterate_batches(loader)
    uninterrupted = [(it, ep, _signature(batch)) for it, ep, batch in (next(stream) for _ in range(8))]
    assert [(it, ep) for it, ep, _ in uninterrupted] == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 1), (6, 2), (7, 2)]
    resumed_loader = build_loader(dataset, batch_size=3, shuffle=True, workers=0, seed=9)
    resumed = iterate_batches(resumed_loader, start_iteration=4)
    assert [(it, ep, _signature(batch)) for it, ep, batch in (next(resumed) for _ in range(4))] == uninterrupted[4:]


def test_distributed_ranks_split_each_epoch(dataset) -> None:
    ids = []
    for rank in (0, 1):
        loader = build_loader(
            dataset, batch_size=1, shuffle=True, workers=0, distributed=True, seed=3, num_replicas=2, rank=rank
        )
        loader.sampler.set_epoch(2)
        ids.append([batch[0]["image_id"] for batch in loader])
    assert len(ids[0]) == len(ids[1]) == 5 and sorted(ids[0] + ids[1]) == list(range(1, 11))
    with pytest.raises(RuntimeError, match="process group"):
        build_loader(dataset, batch_size=1, shuffle=True, workers=0, distributed=True)


def test_plain_datasets_and_bad_arguments(dataset) -> None:
    plain = build_loader([np.float32(v) for v in range(5)], batch_size=2, shuffle=False, workers=0, drop_last=False)
    assert [list(map(float, batch)) for batch in plain] == [[0.0, 1.0], [2.0, 3.0], [4.0]]
    with pytest.raises(ValueError, match="fewer than batch_size=11"):
        build_loader(dataset, batch_size=11, shuffle=True, workers=0)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        build_loader(dataset, batch_size=0, shuffle=True, workers=0)
    with pytest.raises(ValueError, match="non-negative"):
        build_loader(dataset, batch_size=1, shuffle=True, workers=0).sampler.set_epoch(-1)


def test_loader_batches_collate_into_the_network_input_and_targets(dataset) -> None:
    # the loader yields lists of augmented samples; the shared collation (the trainer's) pads them into one batch
    batch = next(iter(build_loader(dataset, batch_size=3, shuffle=True, workers=0, seed=6)))
    images, targets = collate(batch, InputSpec(size_divisibility=32), 1, "cpu")
    heights, widths = [s["image"].shape[0] for s in batch], [s["image"].shape[1] for s in batch]
    assert images.shape == (3, 3, -(-max(heights) // 32) * 32, -(-max(widths) // 32) * 32)
    for sample, target in zip(batch, targets):
        height, width = sample["image"].shape[:2]
        assert np.array_equal(target["masks"][:, :height, :width].numpy(), sample["masks"])
        assert not target["masks"][:, height:].any() and not target["masks"][:, :, width:].any()
        assert torch.equal(target["boxes"], torch.from_numpy(sample["boxes"]))  # the sample's boxes, as they are
        assert target["labels"].tolist() == sample["labels"].tolist()
