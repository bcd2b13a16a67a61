"""Quality control at the station (domain brief section 1).

- :mod:`agent.qc.checks`  pure check functions over numpy arrays
- :mod:`agent.qc.series`  one channel's pipeline: checks in order, merged into flag + reason
- :mod:`agent.qc.params`  QCParams with the brief's defaults, loaded from the ``[qc]`` table
- :mod:`agent.qc.engine`  QCEngine: streaming QC over batches of readings with bounded history
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
