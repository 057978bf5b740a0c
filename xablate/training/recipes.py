"""Training recipes from conf/optim/: optimizer, learning-rate schedule, Polyak/EMA averaging.

Schedules (`schedule.kind`):
    constant     — the learning rate throughout;
    exponential  — × `factor` every `every_epochs` epochs or every `every_samples` images (staircase);
    piecewise    — × `factor` at each fraction of training in `at_fractions` (e.g. [0.3, 0.7]).
A schedule spans `horizon_epochs` (null: the run's own train.epochs): a tuning trial the staged sweeper stops
at an earlier epoch trains the first epochs of the final run's schedule, not a compressed one.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Callable

import keras

from xablate.checks import number_in

if TYPE_CHECKING:  # the typed sections, for annotations only
    from xablate.schema import Optim, Schedule


def _constant(lr: float, schedule: Schedule, *, steps_per_epoch: int, epochs: int, batch_size: int):
    return lr


def _exponential(lr: float, schedule: Schedule, *, steps_per_epoch: int, epochs: int, batch_size: int):
    if schedule.every_samples:
        decay_steps = max(1, round(schedule.every_samples / batch_size))
    else:
        decay_steps = max(1, round(schedule.every_epochs * steps_per_epoch))
    return keras.optimizers.schedules.ExponentialDecay(lr, decay_steps, schedule.factor, staircase=True)


def _piecewise(lr: float, schedule: Schedule, *, steps_per_epoch: int, epochs: int, batch_size: int):
    total = steps_per_epoch * epochs
    boundaries = [max(1, int(f * total)) for f in schedule.at_fractions]
    values = [lr * schedule.factor ** i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def _check_factor(schedule: Schedule) -> None:
    number_in("optim.schedule.factor", schedule.factor, 0.0, 1.0, low_open=True, high_open=False)


def _check_exponential(schedule: Schedule) -> None:
    _check_factor(schedule)
    every = schedule.every_samples or schedule.every_epochs
    if not (isinstance(every, (int, float)) and not isinstance(every, bool) and every > 0):
        raise ValueError(f"Received optim.schedule={asdict(schedule)!r}; allowed: an exponential schedule needs "
                         f"every_epochs > 0 or every_samples > 0.")


def _check_piecewise(schedule: Schedule) -> None:
    _check_factor(schedule)
    fractions = schedule.at_fractions
    if (not isinstance(fractions, list) or not fractions or fractions != sorted(fractions)
            or not all(isinstance(f, (int, float)) and 0 < f < 1 for f in fractions)):
        raise ValueError(f"Received optim.schedule.at_fractions={fractions!r}; allowed: increasing fractions "
                         f"of training between 0 and 1, e.g. [0.3, 0.7].")


# Registries: a schedule is (its learning rate or keras schedule, the check of its settings); an optimizer is
# its Keras constructor from (learning rate, the optim section, EMA/accumulation keywords). A new one is one entry.
SCHEDULES: dict[str, tuple[Callable, Callable[[Schedule], None]]] = {
    "constant": (_constant, lambda schedule: None),
    "exponential": (_exponential, _check_exponential),
    "piecewise": (_piecewise, _check_piecewise),
}
OPTIMIZERS: dict[str, Callable] = {
    "sgd": lambda lr, optim, extra: keras.optimizers.SGD(lr, momentum=optim.momentum or 0.0, **extra),
    "adam": lambda lr, optim, extra: keras.optimizers.Adam(lr, **extra),
    "rmsprop": lambda lr, optim, extra: keras.optimizers.RMSprop(lr, momentum=optim.momentum or 0.0, **extra),
}


def learning_rate(optim: Optim, *, steps_per_epoch: int, epochs: int, batch_size: int):
    """A float or a keras LearningRateSchedule for the recipe."""
    schedule = optim.schedule
    if schedule.kind not in SCHEDULES:
        raise ValueError(f"Received optim.schedule.kind={schedule.kind!r}; allowed: {', '.join(SCHEDULES)}.")
    build, _ = SCHEDULES[schedule.kind]
    horizon = int(schedule.horizon_epochs or epochs)  # a trial stopped early: the final run's schedule, not a shorter one
    return build(float(optim.learning_rate), schedule, steps_per_epoch=steps_per_epoch, epochs=horizon,
                 batch_size=batch_size)


def build_optimizer(optim: Optim, *, steps_per_epoch: int, epochs: int, batch_size: int,
                    gradient_accumulation_steps: int | None = None) -> keras.optimizers.Optimizer:
    """The recipe's optimizer, with EMA weights (Polyak averaging) when `ema_momentum` is set, and gradients
    accumulated over `gradient_accumulation_steps` batches when given (>= 2)."""
    lr = learning_rate(optim, steps_per_epoch=steps_per_epoch, epochs=epochs, batch_size=batch_size)
    extra = {"use_ema": True, "ema_momentum": float(optim.ema_momentum)} if optim.ema_momentum else {}
    if gradient_accumulation_steps:
        extra["gradient_accumulation_steps"] = int(gradient_accumulation_steps)
    if optim.optimizer not in OPTIMIZERS:
        raise ValueError(f"Received optim.optimizer={optim.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}.")
    return OPTIMIZERS[optim.optimizer](lr, optim, extra)


def separate_ema_buffers(optimizer: keras.optimizers.Optimizer) -> None:
    """After `fit` on JAX: give each EMA average its own array. Keras' end of training assigns the averages to
    the model's weights by reference (`finalize_variable_values`), and JAX's next jitted step (the test
    evaluation) donates the weights' buffers, deleting the averages with them ("Array has been deleted" at the
    next save or checkpoint). TensorFlow copies on assign; nothing to do there."""
    if keras.backend.backend() != "jax" or not getattr(optimizer, "use_ema", False):
        return
    for average in optimizer._model_variables_moving_average:
        if average is not None:
            average.assign(keras.ops.copy(average.value))


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimizer applies at its current iteration."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def validate_recipe(optim: Optim) -> None:
    """Checks an `optim` config before any run starts (its weight decay and dropout: the model builder)."""
    if optim.optimizer not in OPTIMIZERS:
        raise ValueError(f"Received optim.optimizer={optim.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}.")
    lr = optim.learning_rate
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"Received optim.learning_rate={lr!r}; allowed: a number > 0.")
    if optim.momentum is not None:
        number_in("optim.momentum", optim.momentum, 0.0, 1.0)
    if optim.ema_momentum is not None:
        number_in("optim.ema_momentum", optim.ema_momentum, 0.0, 1.0, low_open=True)
    schedule = optim.schedule
    kind = schedule.kind
    if kind not in SCHEDULES:
        raise ValueError(f"Received optim.schedule.kind={kind!r}; allowed: {', '.join(SCHEDULES)}.")
    SCHEDULES[kind][1](schedule)
    horizon = schedule.horizon_epochs
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
        raise ValueError(f"Received optim.schedule.horizon_epochs={horizon!r}; allowed: null (the run's "
                         f"train.epochs) or an integer >= 1.")
