"""Quality control at the station (domain brief section 1).

- :mod:`agent.qc.checks`  pure check functions over numpy arrays
- :mod:`agent.qc.series`  one channel's pipeline: checks in order, merged into flag + reason
- :mod:`agent.qc.params`  QCParams with the brief's defaults, loaded from the ``[qc]`` table
- :mod:`agent.qc.engine`  QCEngine: streaming QC over batches of readings with bounded history
- :mod:`agent.qc.ring`    the bounded numpy rings both the QC and derived engines keep

What each simulator fault (sim.spec.FAULT_KINDS) becomes, flag and reason:

    spike          wind: 1 step | rain_total: 2 rain_rate | water: 1 rise_rate (up-spikes)
    stuck          wind speed/dir, radar distance (and the depth made from it): 1 stuck,
                   once a whole window (60 / 30 min) has been flat
    drift          water rising with no rain: 1 consistency; falling: 1 climate below -20 mm
    counter_reset  1 counter_reset on the first lower total (8 counter_reset if the driver
                   reports the status instead)
    no_answer, slow_answer, crc_error, truncated, garbage, wrong_slave, port_vanish
                   8 with the driver status as reason (timeout, crc_error, bad_frame, ...)
"""

from agent.qc.engine import QCEngine
from agent.qc.params import ChannelLimits, QCParams
from agent.qc.series import SeriesContext, SeriesState, Verdicts, qc_series

__all__ = [
    "ChannelLimits",
    "QCEngine",
    "QCParams",
    "SeriesContext",
    "SeriesState",
    "Verdicts",
    "qc_series",
]
