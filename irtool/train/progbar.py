"""Keras 3's progress bar (``keras.utils.Progbar``), reproduced byte for byte.

The text follows ``keras/src/utils/progbar.py``: a ``\\r``-redrawn line ``{step}/{total} {bar} {eta}
{time}/step - name: value ...`` for ``verbose=1`` and one ``{step}/{total} - {elapsed}s - {time}/step - ...``
line at the end for ``verbose=2``. One deliberate difference: Keras always wraps the counter, the bar and
the time in ANSI bold/colour codes; here they are emitted only when ``sys.stdout`` is a terminal (or when
``ansi=True`` is passed), so logs redirected to files stay plain text. With ``ansi=True`` the output is
identical to Keras'.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

BAR_CHAR = "━"


def _write(message: str) -> None:
    """Keras' ``io_utils.print_msg(message, line_break=False)``: write, falling back to ASCII, and flush."""
    stream = sys.stdout
    try:
        stream.write(message)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        stream.write(message.replace(BAR_CHAR, "=").encode(encoding, errors="ignore").decode(encoding))
    stream.flush()


def print_msg(message, line_break: bool = True) -> None:
    """Write a message to ``sys.stdout`` like Keras' ``io_utils.print_msg``."""
    message = str(message)
    _write(f"{message}\n" if line_break else message)


def _is_tty() -> bool:
    stream = sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progbar:
    """Displays a progress bar (``keras.utils.Progbar``).

    Args:
        target: Total number of steps expected, ``None`` if unknown.
        width: Progress bar width on screen.
        verbose: 0 (silent), 1 (redrawn bar), 2 (one line when finished).
        interval: Minimum visual progress update interval (in seconds).
        stateful_metrics: Names of metrics displayed as-is. Every other metric is averaged over steps.
        stateless_metrics: Names of metrics that are averaged; every other one is displayed as-is.
            Give at most one of ``stateful_metrics`` and ``stateless_metrics``.
        unit_name: Display name for step counts (usually ``"step"`` or ``"sample"``).
        time_fn: Clock returning seconds (default: ``time.time``, looked up at each call).
        ansi: Whether to emit Keras' ANSI bold/colour codes. ``None`` (default): only when ``sys.stdout``
            is a terminal when the bar is created.
    """

    def __init__(
        self,
        target,
        width=20,
        verbose=1,
        interval=0.05,
        stateful_metrics=None,
        stateless_metrics=None,
        unit_name="step",
        time_fn=None,
        ansi=None,
    ):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError(
                "Only one of `stateful_metrics` or `stateless_metrics` "
                "can be provided. `stateful_metrics` is used to make metrics "
                "stateless by default (with an exclusion list), while "
                "`stateless_metrics` is used to make metrics stateful by "
                "default (with an exclusion list)."
            )
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        if stateful_metrics is not None:
            self.stateful_metrics = set(stateful_metrics)
            self.stateless_metrics = None
        elif stateless_metrics is not None:
            self.stateful_metrics = None
            self.stateless_metrics = set(stateless_metrics)
        else:
            self.stateful_metrics = set()
            self.stateless_metrics = None
        self._time_fn = time_fn
        self.ansi = _is_tty() if ansi is None else bool(ansi)
        # Keras redraws in place whenever it runs on a POSIX system (always true on Linux and macOS).
        self._dynamic_display = (
            _is_tty() or "ipykernel" in sys.modules or os.name == "posix" or "PYCHARM_HOSTED" in os.environ
        )
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = self._now()
        self._last_update = 0
        self._time_after_first_step = None
        self._prev_total_width = 0

    def _now(self) -> float:
        return self._time_fn() if self._time_fn is not None else time.time()

    def _style(self, code: str, text: str) -> str:
        return f"{code}{text}\x1b[0m" if self.ansi else text

    def update(self, current, values=None, finalize=None):
        """Update the bar to step ``current``.

        Args:
            current: Index of the current step.
            values: List of ``(name, value_for_last_step)`` tuples. Stateless metrics are averaged over
                the steps since the previous update (weighted by the steps advanced); stateful ones are
                shown as-is.
            finalize: Whether this is the last update. ``None``: ``current >= target``.
        """
        if finalize is None:
            finalize = False if self.target is None else current >= self.target

        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            if self.stateful_metrics is not None:
                stateless = k not in self.stateful_metrics
            else:
                stateless = k in self.stateless_metrics
            if stateless:
                if finalize:
                    self._values[k] = [v, 1]
                else:
                    value_base = max(current - self._seen_so_far, 1)
                    if k not in self._values:
                        self._values[k] = [v * value_base, value_base]
                    else:
                        self._values[k][0] += v * value_base
                        self._values[k][1] += value_base
            else:
                self._values[k] = [v, 1]
        self._seen_so_far = current

        now = self._now()
        time_per_unit = self._estimate_step_duration(current, now)

        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            message = ("\b" * self._prev_total_width + "\r") if self._dynamic_display else "\n"
            if self.target is not None and self.target > 0:
                numdigits = int(math.log10(self.target)) + 1
                bar = self._style("\x1b[1m", f"%{numdigits}d/%d" % (current, self.target)) + " "
                prog_width = int(self.width * (float(current) / self.target))
                if prog_width > 0:
                    bar += self._style("\33[32m", BAR_CHAR * prog_width)
                bar += self._style("\33[37m", BAR_CHAR * (self.width - prog_width))
            else:
                bar = f"{int(current):7d}/Unknown"
            message += bar

            if self.target is not None and self.target > 0 and not finalize:
                info = " " + self._style("\x1b[1m", format_eta(time_per_unit * (self.target - current)))
            else:
                info = " " + self._style("\x1b[1m", f"{now - self._start:.0f}s")
            info += self._format_time(time_per_unit, self.unit_name)
            for k in self._values_order:
                info += f" - {k}: {_format_value(self._average(k), signed=True)}"
            message += info

            total_width = _visible_len(bar) + _visible_len(info)
            if self._prev_total_width > total_width:
                message += " " * (self._prev_total_width - total_width)
            if finalize:
                message += "\n"
            _write(message)
            self._prev_total_width = total_width

        elif self.verbose == 2:
            if finalize and self.target is not None and self.target > 0:
                numdigits = int(math.log10(self.target)) + 1
                info = f"%{numdigits}d/%d" % (current, self.target)
                info += f" - {now - self._start:.0f}s"
                info += f" -{self._format_time(time_per_unit, self.unit_name)}"
                for k in self._values_order:
                    # Keras tests ``avg > 1e-3`` here (not ``abs``), so negative values print as ``-1.2345e+00``.
                    info += f" - {k}: {_format_value(self._average(k), signed=False)}"
                _write(info + "\n")

        self._last_update = now

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)

    def _average(self, k):
        total, count = self._values[k]
        if not isinstance(total, float):
            total = np.mean(total)
        return total / max(1, count)

    @staticmethod
    def _format_time(time_per_unit, unit_name):
        """`` 421ms/step``, `` 753us/step`` or `` 1s/step`` (with the leading space, like Keras)."""
        if time_per_unit >= 1 or time_per_unit == 0:
            return f" {time_per_unit:.0f}s/{unit_name}"
        if time_per_unit >= 1e-3:
            return f" {time_per_unit * 1000.0:.0f}ms/{unit_name}"
        return f" {time_per_unit * 1000000.0:.0f}us/{unit_name}"

    def _estimate_step_duration(self, current, now):
        """Seconds per step, ignoring the (non-representative) first step once there are more."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit


def format_eta(eta: float) -> str:
    """``1:02:03`` above an hour, ``1:05`` above a minute, else ``42s`` (truncated, like Keras)."""
    if eta > 3600:
        return f"{int(eta // 3600)}:{int((eta % 3600) // 60):02d}:{int(eta % 60):02d}"
    if eta > 60:
        return f"{int(eta // 60)}:{int(eta % 60):02d}"
    return f"{int(eta)}s"


def _format_value(avg, signed: bool) -> str:
    big = abs(avg) > 1e-3 if signed else avg > 1e-3
    return f"{avg:.4f}" if big else f"{avg:.4e}"


def _visible_len(text: str) -> int:
    """Length without ANSI escape sequences (what Keras computes with its ``special_char_len``)."""
    length = 0
    i = 0
    while i < len(text):
        if text[i] == "\x1b":
            end = text.find("m", i)
            if end != -1:
                i = end + 1
                continue
        length += 1
        i += 1
    return length
