"""The simulator's weather: design storms, wind, ponding, and the truth devices report.

- :mod:`sim.weather.rain`     Shanghai formula; Chicago, two-peak, drizzle, dry hyetographs
- :mod:`sim.weather.wind`     1-s wind with gusts: calm, gusty, squall, typhoon
- :mod:`sim.weather.ponding`  water depth at one street point drained by an inlet
- :mod:`sim.weather.truth`    ArrayTruth and build_truth (storm + wind + site + seed)
"""
