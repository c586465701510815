"""What the simulated devices measure: three DePIN profiles with integer fields.

Payloads are canonical JSON of integer fields (no floats: payloads are hashed,
and every operator must read the same numbers). Each field has a plausible
range (inclusive); a job's validation rules can take them from ``plausible``,
and the simulator's ``implausible`` fault pushes one field outside it.
Readings follow a bounded random walk from a per-device baseline, so a series
looks like a sensor's and stays plausible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One payload field: plausible range, the baseline range devices start in, largest step."""

    name: str
    low: int
    high: int
    start_low: int
    start_high: int
    step: int


@dataclass(frozen=True, slots=True)
class Profile:
    """A kind of device and the fields of its payload."""

    name: str
    fields: tuple[FieldSpec, ...]

    def plausible(self) -> dict[str, tuple[int, int]]:
        """Field -> (low, high), inclusive."""
        return {f.name: (f.low, f.high) for f in self.fields}

    def baseline(self, rng: random.Random) -> dict[str, int]:
        """A device's starting values."""
        return {f.name: rng.randint(f.start_low, f.start_high) for f in self.fields}

    def step(self, rng: random.Random, state: dict[str, int]) -> dict[str, int]:
        """The next reading: each field moves a little, clamped into its plausible range."""
        out: dict[str, int] = {}
        for f in self.fields:
            value = state[f.name] + rng.randint(-f.step, f.step)
            out[f.name] = min(max(value, f.low), f.high)
        return out

    def implausible(self, rng: random.Random, values: dict[str, int]) -> dict[str, int]:
        """``values`` with one field pushed outside its plausible range."""
        f = self.fields[rng.randrange(len(self.fields))]
        span = f.high - f.low
        out = dict(values)
        out[f.name] = (
            f.high + 1 + rng.randint(0, span)
            if rng.random() < 0.5
            else f.low - 1 - rng.randint(0, span)
        )
        return out


WEATHER_STATION = Profile(
    "weather-station",
    (
        FieldSpec("temp_c_x100", -6000, 6000, -1000, 3500, 20),
        FieldSpec("humidity_bp", 0, 10000, 2000, 9000, 50),
        FieldSpec("pressure_pa", 87000, 108500, 98000, 103000, 10),
        FieldSpec("wind_mm_s", 0, 75000, 0, 8000, 200),
        FieldSpec("rain_um_h", 0, 300000, 0, 500, 100),
    ),
)
AIR_QUALITY = Profile(
    "air-quality",
    (
        FieldSpec("pm25_ug_m3_x10", 0, 10000, 30, 400, 10),
        FieldSpec("pm10_ug_m3_x10", 0, 20000, 60, 800, 15),
        FieldSpec("co2_ppm", 300, 10000, 400, 900, 5),
        FieldSpec("no2_ppb", 0, 2000, 5, 60, 2),
        FieldSpec("voc_index", 1, 500, 50, 150, 3),
    ),
)
GPS_COVERAGE = Profile(
    "gps-coverage",
    (
        FieldSpec("lat_e7", -900000000, 900000000, 350000000, 550000000, 2000),
        FieldSpec("lon_e7", -1800000000, 1800000000, -100000000, 300000000, 2000),
        FieldSpec("satellites", 0, 64, 6, 20, 1),
        FieldSpec("hdop_x100", 50, 9999, 70, 300, 5),
        FieldSpec("snr_db", 0, 60, 25, 45, 1),
    ),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (WEATHER_STATION, AIR_QUALITY, GPS_COVERAGE)}


