"""The station agent.

Its numpy arrays hold a few values to a few thousand: OpenBLAS's worker threads (one per
further core, started when numpy loads) would only spin at start-up and sit idle in every
station's process, so the agent asks for none unless the environment says otherwise.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
