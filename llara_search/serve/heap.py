"""Why a server freezes its heap once it is loaded: Python's full garbage collection walks every tracked object, and
a process that has imported torch and transformers and loaded a model holds hundreds of thousands of them. Each
full collection then stopped every thread for about 240 ms, a few times a minute while big answers were built
(thousands of result objects per request trigger them): the slowest small searches were exactly those pauses
(benchmarks/hostile_serve.py). What exists at start-up lives as long as the server, so it is moved out of the
collector's sight (`gc.freeze`); a full collection then walks only what requests made since.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect what start-up left as garbage, then exempt the rest from future collections; how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
