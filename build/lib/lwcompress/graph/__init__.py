"""torch.fx graph analysis: compressible layers, the elementwise path feeding each one, BN folding.

Knows nothing about configs, loggers or the CLI: plain nn.Module in, plain data and modules out.
"""

from lwcompress.graph.analyze import LayerInfo, Source, analyze
from lwcompress.graph.fold import fold_bn

__all__ = ["LayerInfo", "Source", "analyze", "fold_bn"]
