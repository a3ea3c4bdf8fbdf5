"""Grid carbon intensity from CodeCarbon's bundled data (no network).

Read straight from the JSON files CodeCarbon ships (`codecarbon/data/private_infra/`), found
without importing the package: its import costs about a second, the files a few milliseconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


class CarbonError(ValueError):
    """An unknown country code: bad input (exit status 2)."""

    exit_code = 2


def _data(name: str) -> dict:
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise CarbonError("CodeCarbon is not installed: its grid data gives the carbon intensity")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "private_infra" / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CarbonError(f"cannot read CodeCarbon's grid data {path}: {exc}") from None


def carbon_intensity(country_iso3: str | None) -> tuple[float, str]:
    """g CO2eq per kWh and where it came from; None means CodeCarbon's world average."""
    if not country_iso3:
        return float(_data("carbon_intensity_per_source.json")["world_average"]), "world average (CodeCarbon)"
    mix = _data("global_energy_mix.json")
    code = country_iso3.upper()
    if code not in mix:
        raise CarbonError(f"unknown country code {country_iso3!r}: "
                          "use an ISO 3166-1 alpha-3 code such as USA, FRA, DEU")
    entry = mix[code]
    return (float(entry["carbon_intensity"]),
            f"{entry['country_name']} {entry.get('year', '')} grid (CodeCarbon)".replace("  ", " "))
