"""The state-dict round trips of every stateful labkit optimizer test something: a run that
forgets the optimizer's state halfway (a fresh optimizer at step 25) ends elsewhere."""

from __future__ import annotations

import pytest

from labkit.optim import SGD, Adagrad, Adam, Lion, RMSprop
from labkit.testing import make_problem, run_optimizer

STATEFUL = {
    "SGD(momentum)": (SGD, dict(lr=0.02, momentum=0.9)),
    "Adam": (Adam, dict(lr=0.01)),
    "Adagrad": (Adagrad, dict(lr=0.1)),
    "RMSprop(centred, momentum)": (RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    "Lion": (Lion, dict(lr=0.01)),
}


@pytest.mark.parametrize("name", list(STATEFUL))
def test_a_round_trip_without_the_state_would_differ(name):
    cls, options = STATEFUL[name]
    init, loss = make_problem()
    full = run_optimizer(lambda g: cls(g), init, loss, [options])
    half = run_optimizer(lambda g: cls(g), init, loss, [options], steps=25)
    half = run_optimizer(lambda g: cls(g), half, loss, [options], steps=25)
    assert max((a - b).abs().max().item() for a, b in zip(full, half)) > 1e-4
