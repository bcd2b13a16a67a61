"""The operator console: district map, station pages, warnings and response, configuration.

Served by the fleet controller under ``/console/`` (:func:`fleet.console.router.console_router`),
every asset shipped in the package (plain ES modules, vendored Leaflet 1.9.4 and uPlot 1.6.32),
in 简体中文 (default) and English. It is a client of the fleet's API and uses its sessions.
"""
