"""pysalient: salient instance segmentation with native PyTorch operators.

import pysalient
model = pysalient.load("sparseinst")
results = model.predict("image.jpg", conf=0.3)
results[0].masks, results[0].boxes, results[0].scores
"""

from pysalient import ops
from pysalient.engine.loader import load
from pysalient.models import list_models
from pysalient.structures import Result
from pysalient.version import __version__

__all__ = ["Result", "__version__", "list_models", "load", "ops"]
