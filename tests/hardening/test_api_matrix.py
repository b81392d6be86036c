"""The Python API under bad input: constructors, layer calls, models, predict and weights.

One row per case (``api_cases.py``): irtool raises the exception type given with a message holding
the fragments (Keras' own message where Keras has one), and, for rows marked so, real Keras
refuses the same line too, so irtool is not stricter than Keras by accident.
"""

from __future__ import annotations

import pytest

import irtool

from ..harness import get_keras
from .api_cases import FAMILIES
from .matrix import LEAKED_ERRORS

CASES = [(family, name) for family, table in FAMILIES.items() for name in table]
IDS = [f"{family}-{name}".replace(" ", "_") for family, name in CASES]


@pytest.mark.parametrize("family, name", CASES, ids=IDS)
def test_irtool_refuses_with_a_message(family, name):
    case = FAMILIES[family][name]
    with pytest.raises(case.error) as caught:
        case.run(irtool)
    message = " ".join(str(caught.value).split())
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if case.error is not IndexError:  # Sequential.pop(): Keras' own type
        assert not isinstance(caught.value, LEAKED_ERRORS), repr(caught.value)


KERAS_CASES = [(f, n) for f, n in CASES if FAMILIES[f][n].keras]


@pytest.mark.parametrize("family, name", KERAS_CASES, ids=[f"{f}-{n}".replace(" ", "_") for f, n in KERAS_CASES])
def test_keras_refuses_the_same_input(family, name):
    keras = get_keras()
    if keras is None:
        pytest.skip("keras is not installed")
    with pytest.raises(Exception):  # noqa: B017 - Keras' own type varies (IndexError for a bad axis)
        FAMILIES[family][name].run(keras)
