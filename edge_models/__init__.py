"""The waterlogging nowcast that runs on the station (issue 5; MODEL_CARD.md tells the model).

- :mod:`edge_models.features`       the one feature function, used in training and on the station
- :mod:`edge_models.physics`        the point model's outlook (no more rain / rain held), a feature
- :mod:`edge_models.guards`         physical limits applied to the network's outputs
- :mod:`edge_models.dataset`        seeded storms of every family through the point model
- :mod:`edge_models.model`          the network's weights and numpy forward pass
- :mod:`edge_models.train`          ``python -m edge_models.train`` (= ``make model``)
- :mod:`edge_models.tflite_export`  write/read the ``.tflite`` flatbuffer without TensorFlow
- :mod:`edge_models.runtime`        ``Nowcaster``: LiteRT, tflite-runtime or numpy
- :mod:`edge_models.station`        agent glue: minute history, cadence, payload, shadow skill
- :mod:`edge_models.skill`          RMSE, NSE, hit rate and false-alarm ratio against baselines
- :mod:`edge_models.evaluate`       leave-one-family-out, held-out sites, event scores
"""
