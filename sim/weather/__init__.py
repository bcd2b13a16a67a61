"""The simulator's weather: design storms, wind, ponding, and the truth devices report.

- :mod:`sim.weather.rain`     Shanghai formula; Chicago, two-peak, drizzle, dry hyetographs
- :mod:`sim.weather.storms`   storm families (design, Huff, SCS, pulses, bursts...) and site ranges
- :mod:`sim.weather.wind`     1-s wind with gusts: calm, gusty, squall, typhoon
- :mod:`sim.weather.ponding`  the point model: routed catchment, infiltration, pond and drain
- :mod:`sim.weather.swmm`     EPA SWMM (optional pyswmm) as its reference and calibration
- :mod:`sim.weather.truth`    ArrayTruth and build_truth (storm + wind + site + seed)
"""
