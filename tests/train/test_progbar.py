"""Progbar: Keras 3's progress-bar text, asserted exactly with an injected clock."""

import sys

import numpy as np
import pytest

from irtool.train import progbar as progbar_module
from irtool.train.progbar import Progbar, format_eta

BAR = "━" * 20


def clock(*times):
    it = iter(times)
    return lambda: next(it)


def redraw(prev_width):
    """What Keras writes before each redraw on POSIX: backspaces over the previous line, then ``\\r``."""
    return "\b" * prev_width + "\r"


def run(capsys, times, updates, **kwargs):
    bar = Progbar(time_fn=clock(*times), **kwargs)
    for update in updates:
        bar.update(*update)
    return capsys.readouterr().out


def test_verbose1_exact_text(capsys):
    out = run(
        capsys,
        [100.0, 100.5, 101.0, 101.5, 102.0],
        [
            (1, [("loss", 0.9), ("acc", 0.5)]),
            (2, [("loss", 0.8), ("acc", 0.7)]),
            (3, [("loss", 0.0002), ("acc", 0.0001)]),
            (4, [("loss", 0.7), ("acc", 0.45)]),
        ],
        target=4,
        stateful_metrics=["loss"],
    )
    lines = [
        f"1/4 {BAR} 1s 500ms/step - loss: 0.9000 - acc: 0.5000",
        # acc is averaged over steps: (0.5 + 0.7) / 2
        f"2/4 {BAR} 1s 500ms/step - loss: 0.8000 - acc: 0.6000",
        # |v| <= 1e-3 switches to 4-digit scientific notation; (0.5 + 0.7 + 0.0001) / 3 = 0.40003
        f"3/4 {BAR} 0s 500ms/step - loss: 2.0000e-04 - acc: 0.4000",
        # the final update shows elapsed time, takes values as given and pads over the longer previous line
        f"4/4 {BAR} 2s 500ms/step - loss: 0.7000 - acc: 0.4500" + " " * 4 + "\n",
    ]
    want = "\r" + lines[0]
    for prev, line in zip(lines, lines[1:]):
        want += redraw(len(prev)) + line
    assert out == want


def test_verbose2_one_line_at_the_end(capsys):
    out = run(
        capsys,
        [0.0, 1.0, 1.7, 2.4, 3.07],
        [(1, [("loss", 1.0)]), (2, [("loss", 0.5)]), (3, [("loss", 0.5)]), (4, [("loss", 0.7169), ("acc", 0.5)])],
        target=4,
        verbose=2,
    )
    # per step after the first: (3.07 - 1.0) / 3 = 0.69 s
    assert out == "4/4 - 3s - 690ms/step - loss: 0.7169 - acc: 0.5000\n"


def test_verbose2_small_and_negative_values_use_scientific_notation(capsys):
    # Keras tests ``avg > 1e-3`` (not ``abs``) in verbose=2: negative values print in e-notation.
    out = run(capsys, [0.0, 2.0], [(1, [("a", -0.5), ("b", 0.001), ("c", 0.0011)], True)], target=1, verbose=2)
    assert out == "1/1 - 2s - 2s/step - a: -5.0000e-01 - b: 1.0000e-03 - c: 0.0011\n"


def test_verbose1_negative_values_use_abs(capsys):
    out = run(capsys, [0.0, 2.0], [(1, [("a", -0.5), ("b", -0.001)], True)], target=1)
    assert out == f"\r1/1 {BAR} 2s 2s/step - a: -0.5000 - b: -1.0000e-03\n"


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.0, "0s"),
        (5.99, "5s"),
        (60.0, "60s"),
        (65.4, "1:05"),
        (3600.0, "60:00"),
        (3723.9, "1:02:03"),
        (90061.0, "25:01:01"),
    ],
)
def test_eta_formats(seconds, text):
    assert format_eta(seconds) == text


@pytest.mark.parametrize(
    "per_step, text",
    [
        (0, " 0s/step"),
        (1.0, " 1s/step"),
        (2.6, " 3s/step"),
        (0.4214, " 421ms/step"),
        (0.001, " 1ms/step"),
        (0.000753, " 753us/step"),
        (0.0000004, " 0us/step"),
    ],
)
def test_step_time_formats(per_step, text):
    assert Progbar._format_time(per_step, "step") == text


def test_eta_in_the_bar(capsys):
    # one 65 s step done, one left: m:ss
    out = run(capsys, [0.0, 65.0], [(1, None)], target=2)
    assert out == f"\r1/2 {BAR} 1:05 65s/step"
    # 1000 steps of 3.723 s left: h:mm:ss, and the counter is right-aligned to the target's width
    out = run(capsys, [0.0, 3.723], [(1, None)], target=1001)
    assert out == f"\r   1/1001 {BAR} 1:02:03 4s/step"


def test_first_step_is_excluded_from_the_step_time(capsys):
    # step 1 takes 10 s (compilation), the next ones 0.1 s each
    out = run(capsys, [0.0, 10.0, 10.1, 10.2], [(1, None), (2, None), (3, None, True)], target=3)
    assert out.endswith(f"\r3/3 {BAR} 10s 100ms/step\n")


def test_interval_throttles_redraws_but_not_the_final_line(capsys):
    out = run(capsys, [0.0, 1.0, 1.01, 1.02], [(1, None), (2, None), (3, None)], target=3)
    assert out.count("\r") == 2
    assert "2/3" not in out
    assert out.endswith(f"3/3 {BAR} 1s 10ms/step\n")


def test_unknown_target(capsys):
    out = run(capsys, [0.0, 1.0, 2.0], [(1, None), (2, None, True)], target=None)
    first = "      1/Unknown 1s 1s/step"
    assert out == "\r" + first + redraw(len(first)) + "      2/Unknown 2s 1s/step\n"


def test_verbose0_prints_nothing(capsys):
    assert run(capsys, [0.0, 1.0, 2.0], [(1, [("loss", 1.0)]), (2, [("loss", 1.0)])], target=2, verbose=0) == ""


def test_stateless_metrics_list_averages_only_those(capsys):
    out = run(
        capsys,
        [0.0, 1.0, 2.0],
        [(1, [("a", 1.0), ("b", 1.0)]), (2, [("a", 3.0), ("b", 3.0)], False)],
        target=4,
        stateless_metrics=["a"],
    )
    assert out.endswith("a: 2.0000 - b: 3.0000")


def test_averaging_weights_by_steps_advanced(capsys):
    bar = Progbar(10, time_fn=clock(0.0, 1.0, 2.0), verbose=0)
    bar.update(2, [("loss", 1.0)])
    bar.update(5, [("loss", 2.0)])
    assert bar._values["loss"] == [2.0 + 6.0, 5]
    assert bar._average("loss") == pytest.approx(1.6)


def test_numpy_values(capsys):
    out = run(capsys, [0.0, 1.0], [(1, [("loss", np.float32(0.25)), ("v", np.array([1.0, 3.0]))], True)], target=1)
    assert out.endswith(" - loss: 0.2500 - v: 2.0000\n")


def test_add_advances_from_seen(capsys):
    bar = Progbar(4, time_fn=clock(0.0, 1.0, 2.0), verbose=0)
    bar.add(1)
    bar.add(2)
    assert bar._seen_so_far == 3


def test_both_metric_lists_rejected():
    with pytest.raises(ValueError, match="Only one of `stateful_metrics` or `stateless_metrics`"):
        Progbar(3, stateful_metrics=["a"], stateless_metrics=["b"])


def test_ansi_colours_when_forced(capsys):
    out = run(capsys, [0.0, 1.0, 2.0], [(1, [("loss", 0.5)]), (2, [("loss", 0.5)])], target=4, ansi=True)
    first = "1/4 " + "━" * 5 + "━" * 15 + " 3s 1s/step - loss: 0.5000"
    assert out == (
        "\r\x1b[1m1/4\x1b[0m \x1b[32m━━━━━\x1b[0m\x1b[37m" + "━" * 15 + "\x1b[0m \x1b[1m3s\x1b[0m 1s/step - loss: 0.5000"
        # the redraw erases the visible width only
        + redraw(len(first))
        + "\x1b[1m2/4\x1b[0m \x1b[32m" + "━" * 10 + "\x1b[0m\x1b[37m" + "━" * 10 + "\x1b[0m \x1b[1m2s\x1b[0m 1s/step"
        " - loss: 0.5000"
    )  # fmt: skip


def test_ansi_colours_on_a_terminal(capsys, monkeypatch):
    class Tty:
        encoding = "utf-8"

        def __init__(self):
            self.parts = []

        def write(self, text):
            self.parts.append(text)

        def flush(self):
            pass

        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    bar = Progbar(1, time_fn=clock(0.0, 1.0))
    bar.update(1)
    assert "".join(tty.parts) == (
        "\r\x1b[1m1/1\x1b[0m \x1b[32m" + BAR + "\x1b[0m\x1b[37m\x1b[0m \x1b[1m1s\x1b[0m 1s/step\n"
    )


def test_ascii_fallback_when_the_stream_cannot_encode(monkeypatch):
    class Latin1:
        encoding = "latin-1"

        def __init__(self):
            self.parts = []

        def write(self, text):
            text.encode(self.encoding)
            self.parts.append(text)

        def flush(self):
            pass

        def isatty(self):
            return False

    stream = Latin1()
    monkeypatch.setattr(sys, "stdout", stream)
    bar = Progbar(1, time_fn=clock(0.0, 1.0))
    bar.update(1)
    assert "".join(stream.parts) == "\r1/1 " + "=" * 20 + " 1s 1s/step\n"


def test_default_clock_is_time_time(capsys, monkeypatch):
    times = iter([50.0, 52.0])
    monkeypatch.setattr(progbar_module.time, "time", lambda: next(times))
    bar = Progbar(1, verbose=2)
    bar.update(1, [("loss", 0.5)])
    assert capsys.readouterr().out == "1/1 - 2s - 2s/step - loss: 0.5000\n"
