"""The divergence guard on synthetic loss sequences: NaN and inf always stop a run, a loss above
`factor` x the first batch's stops it, one just below does not, factor=None checks NaN/inf only; the epoch and
batch it stopped at are the ones it saw."""

import math
from types import SimpleNamespace

import pytest

from xablate.training.divergence import DivergenceGuard, RunDiverged


def feed(guard, epochs):
    """Runs the guard through `epochs` (a list of per-epoch loss lists) as fit would, stopping where fit would
    (stop_training is read after every batch)."""
    model = SimpleNamespace(stop_training=False)
    guard.set_model(model)
    seen = []
    for epoch, losses in enumerate(epochs):
        guard.on_epoch_begin(epoch)
        for batch, loss in enumerate(losses):
            guard.on_train_batch_end(batch, {"loss": loss})
            seen.append((epoch, batch))
            if model.stop_training:
                return model, seen
    return model, seen


def test_a_finite_loss_that_stays_below_the_factor_never_stops():
    guard = DivergenceGuard(10.0)
    model, seen = feed(guard, [[2.3, 2.0, 5.0], [22.9, 1.0, 0.5]])  # 22.9 < 10 x 2.3
    assert guard.diverged is None and not model.stop_training
    assert len(seen) == 6
    assert guard.reference_loss == 2.3  # the first batch's loss, not a later one


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_stops_at_that_batch(bad):
    guard = DivergenceGuard(10.0)
    model, seen = feed(guard, [[2.3, 2.2, 2.1, 2.0], [1.9, bad, 1.8]])
    assert model.stop_training
    assert seen[-1] == (1, 1)
    assert isinstance(guard.diverged, RunDiverged)
    assert (guard.diverged.epoch, guard.diverged.batch) == (1, 1)
    assert "diverged at epoch 1, batch 1" in str(guard.diverged)
    assert f"loss is {bad}" in guard.diverged.reason


def test_nan_on_the_very_first_batch_stops_and_is_not_taken_as_the_reference():
    guard = DivergenceGuard(10.0)
    model, seen = feed(guard, [[math.nan, 2.3]])
    assert model.stop_training and seen == [(0, 0)]
    assert (guard.diverged.epoch, guard.diverged.batch) == (0, 0)
    assert guard.reference_loss is None


def test_a_loss_above_factor_times_the_first_stops_and_just_below_does_not():
    guard = DivergenceGuard(10.0)
    model, seen = feed(guard, [[2.0, 19.99, 3.0], [2.5, 20.01, 1.0]])
    assert model.stop_training
    assert seen[-1] == (1, 1)
    assert (guard.diverged.epoch, guard.diverged.batch) == (1, 1)
    assert guard.diverged.loss == pytest.approx(20.01)
    assert "train.diverge_factor=10" in guard.diverged.reason


def test_the_factor_is_taken_from_the_setting():
    guard = DivergenceGuard(3.0)
    _, seen = feed(guard, [[1.0, 2.9, 3.1]])
    assert seen[-1] == (0, 2) and (guard.diverged.epoch, guard.diverged.batch) == (0, 2)


@pytest.mark.parametrize("factor", [None, 0])
def test_without_a_factor_only_nan_or_inf_stops(factor):
    guard = DivergenceGuard(factor)
    model, seen = feed(guard, [[1.0, 1e6, 1e30], [1e12, math.nan, 1.0]])
    assert seen[-1] == (1, 1) and model.stop_training
    assert (guard.diverged.epoch, guard.diverged.batch) == (1, 1)
    assert "loss is nan" in guard.diverged.reason


def test_a_resumed_guard_keeps_the_reference_of_the_first_run():
    guard = DivergenceGuard(10.0, reference_loss=2.0)  # restored from the checkpoint
    model, seen = feed(guard, [[], [], [0.5, 21.0]])  # epochs 0, 1 were done before the resume
    assert guard.reference_loss == 2.0  # the resumed run's first batch (0.5) did not replace it
    assert seen[-1] == (2, 1) and (guard.diverged.epoch, guard.diverged.batch) == (2, 1)


def test_only_the_first_divergence_is_recorded():
    guard = DivergenceGuard(10.0)
    guard.set_model(SimpleNamespace(stop_training=False))
    guard.on_epoch_begin(0)
    for batch, loss in enumerate([1.0, math.inf, math.nan]):  # fit may run a batch more before it stops
        guard.on_train_batch_end(batch, {"loss": loss})
    assert guard.diverged.batch == 1 and "loss is inf" in guard.diverged.reason
