"""The waterlogging nowcast that runs on the station (issue 5; MODEL_CARD.md tells the model).

- :mod:`edge_models.features`       the one feature function, used in training and on the station
- :mod:`edge_models.dataset`        seeded storms through the simulator's physics, split by storm
- :mod:`edge_models.model`          the network's weights and numpy forward pass
- :mod:`edge_models.train`          ``python -m edge_models.train`` (= ``make model``)
- :mod:`edge_models.tflite_export`  write/read the ``.tflite`` flatbuffer without TensorFlow
- :mod:`edge_models.runtime`        ``Nowcaster``: LiteRT, tflite-runtime or numpy
- :mod:`edge_models.station`        glue for the agent: minute history, cadence, forecast payload
- :mod:`edge_models.skill`          RMSE, NSE, hit rate and false-alarm ratio against baselines
"""
