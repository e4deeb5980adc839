"""Loghub's real timestamps: one parser per system of the 2k samples (years assumed where the format has none)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from pathlib import Path

_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def _numbers(*groups: str) -> list[int]:
    return [int(g) for g in groups]


def _syslog(year: int) -> tuple[re.Pattern[str], Callable[[re.Match[str]], int]]:
    return (re.compile(r"(\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)"),
            lambda m: _utc(year, _MONTHS[m[1]], *_numbers(m[2], m[3], m[4], m[5])))


def _iso() -> tuple[re.Pattern[str], Callable[[re.Match[str]], int]]:
    return re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)"), lambda m: _utc(*_numbers(*m.groups()))


_EPOCH = (re.compile(r"\S+ (\d{9,10}) "), lambda m: int(m[1]))

#: system → (a regex matched at the start of a line, its epoch second)
PARSERS: dict[str, tuple[re.Pattern[str], Callable[[re.Match[str]], int]]] = {
    "Android": (re.compile(r"(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)"), lambda m: _utc(2017, *_numbers(*m.groups()))),
    "Apache": (re.compile(r"\[\w{3} (\w{3}) (\d\d) (\d\d):(\d\d):(\d\d) (\d{4})\]"),
               lambda m: _utc(int(m[6]), _MONTHS[m[1]], *_numbers(m[2], m[3], m[4], m[5]))),
    "BGL": _EPOCH,
    "HDFS": (re.compile(r"(\d\d)(\d\d)(\d\d) (\d\d)(\d\d)(\d\d) "),
             lambda m: _utc(2000 + int(m[1]), *_numbers(*m.groups()[1:]))),
    "HPC": (re.compile(r"\S+ \S+ \S+ \S+ (\d{9,10}) "), lambda m: int(m[1])),
    "Hadoop": _iso(),
    "HealthApp": (re.compile(r"(\d{4})(\d\d)(\d\d)-(\d{1,2}):(\d{1,2}):(\d{1,2})"),
                  lambda m: _utc(*_numbers(*m.groups()))),
    "Linux": _syslog(2005),
    "Mac": _syslog(2017),
    "OpenSSH": _syslog(2017),
    "OpenStack": (re.compile(r"\S+ (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)"), lambda m: _utc(*_numbers(*m.groups()))),
    "Proxifier": (re.compile(r"\[(\d\d)\.(\d\d) (\d\d):(\d\d):(\d\d)\]"), lambda m: _utc(2016, *_numbers(*m.groups()))),
    "Spark": (re.compile(r"(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)"),
              lambda m: _utc(2000 + int(m[1]), *_numbers(*m.groups()[1:]))),
    "Thunderbird": _EPOCH,
    "Windows": _iso(),
    "Zookeeper": _iso(),
}


#: Formats without a year: a time more than 90 days before the previous line's is in the next year.
YEARLESS = {"Android", "Linux", "Mac", "OpenSSH", "Proxifier"}
_YEAR = 365 * 86400


def timed_lines(path: Path, system: str) -> list[tuple[int, str]]:
    """``(epoch second, line)`` for each line of a Loghub file that starts with its system's timestamp, in time
    order (a few files are not sorted: the samples were drawn from longer logs)."""
    pattern, epoch = PARSERS[system]
    out: list[tuple[int, str]] = []
    years = 0
    for line in path.read_text(errors="replace").splitlines():
        match = pattern.match(line)
        if match is None:
            continue
        t = epoch(match) + years * _YEAR
        if system in YEARLESS and out and t < out[-1][0] - 90 * 86400:
            years += 1
            t += _YEAR
        out.append((t, line))
    return sorted(out, key=lambda tl: tl[0])
