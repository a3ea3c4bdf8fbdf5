"""Grid carbon intensity from CodeCarbon's bundled data (no network)."""

from __future__ import annotations


class CarbonError(ValueError):
    pass


def carbon_intensity(country_iso3: str | None) -> tuple[float, str]:
    """g CO2eq per kWh and where it came from; None means CodeCarbon's world average."""
    from codecarbon.input import DataSource

    src = DataSource()
    if not country_iso3:
        return float(src.get_carbon_intensity_per_source_data()["world_average"]), "world average (CodeCarbon)"
    mix = src.get_global_energy_mix_data()
    code = country_iso3.upper()
    if code not in mix:
        raise CarbonError(f"unknown country code {country_iso3!r}: "
                          "use an ISO 3166-1 alpha-3 code such as USA, FRA, DEU")
    entry = mix[code]
    return (float(entry["carbon_intensity"]),
            f"{entry['country_name']} {entry.get('year', '')} grid (CodeCarbon)".replace("  ", " "))
