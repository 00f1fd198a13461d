"""Small BatchNorm CNNs for 28x28 grayscale data (Fashion-MNIST): the embedded default's reference models.

Both families have a BatchNorm after every conv, which is what the data-free generators feed on.
The `tiny` variants share the code and exist so tests run in milliseconds.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs with a residual; a 1x1 conv-BN shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, cout, 3, stride)
        self.conv2, self.bn2 = conv_bn(cout, cout, 3)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu(out + skip)


class CifarResNet(nn.Module):
    """CIFAR-style ResNet (He et al. 2016, section 4.2): 6n+2 layers, three stages of widths w, 2w, 4w."""

    def __init__(self, depth: int = 20, width: int = 16, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CifarResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1, self.bn1 = conv_bn(in_channels, width, 3)
        self.relu = nn.ReLU(inplace=False)
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.layers(x))
        return self.fc(torch.flatten(x, 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear bottleneck (+ residual)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*conv_bn(cin, hidden, 1), nn.ReLU6(inplace=False)]
        layers += [*conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=False)]
        layers += conv_bn(hidden, cout, 1)
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


# (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper's table 2,
# scaled down for 28x28 inputs: two stride-2 stages take 28 -> 7.
SMALL_SETTINGS = ((1, 8, 1, 1), (6, 16, 2, 2), (6, 24, 3, 2), (6, 32, 3, 1), (6, 48, 2, 1))
TINY_SETTINGS = ((1, 8, 1, 1), (2, 8, 2, 2), (2, 16, 1, 2))


class SmallMobileNetV2(nn.Module):
    """MobileNetV2 for small grayscale images: stride-1 stem, inverted residuals, ReLU6, 1x1 head conv."""

    def __init__(
        self,
        settings: tuple[tuple[int, int, int, int], ...] = SMALL_SETTINGS,
        stem: int = 16,
        head: int = 192,
        num_classes: int = 10,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [*conv_bn(in_channels, stem, 3), nn.ReLU6(inplace=False)]
        cin = stem
        for t, c, n, s in settings:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [*conv_bn(cin, head, 1), nn.ReLU6(inplace=False)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
