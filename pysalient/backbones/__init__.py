"""Backbones returning ``{"res3", "res4", "res5"}`` feature dicts (strides 8, 16, 32; dilated ResNets and the dilated
VGG-16 keep stride 8)."""

from typing import Callable, Dict

from torch import nn

from pysalient.backbones.mobilenetv2 import MobileNetV2, MobileNetV2Config, build_mobilenetv2
from pysalient.backbones.resnet import ResNet, ResNetConfig, build_resnet
from pysalient.backbones.vgg import VGG16, VGGConfig, build_vgg16

BACKBONES: Dict[str, Callable[..., nn.Module]] = {
    "resnet18": lambda **kwargs: build_resnet(18, **kwargs),
    "resnet34": lambda **kwargs: build_resnet(34, **kwargs),
    "resnet50": lambda **kwargs: build_resnet(50, **kwargs),
    "resnet101": lambda **kwargs: build_resnet(101, **kwargs),
    "mobilenetv2": build_mobilenetv2,
    "vgg16": build_vgg16,
}


def build_backbone(name: str, **kwargs: object) -> nn.Module:
    """Builds a backbone by name (``resnet18/34/50/101``, ``mobilenetv2``, ``vgg16``) with config overrides."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {sorted(BACKBONES)}")
    return BACKBONES[name](**kwargs)


__all__ = [
    "BACKBONES",
    "MobileNetV2",
    "MobileNetV2Config",
    "ResNet",
    "ResNetConfig",
    "VGG16",
    "VGGConfig",
    "build_backbone",
    "build_mobilenetv2",
    "build_resnet",
    "build_vgg16",
]
