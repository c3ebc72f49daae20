"""Instance activation map (IAM) decoders of SparseInst (Cheng et al., CVPR'22).

An instance branch predicts N activation maps A_i, pools instance features z_i = sum_p A_i(p) X(p) / sum_p
A_i(p) and reads class logits, objectness and a mask kernel off each z_i; a mask branch predicts D-channel
mask features M, and mask i is kernel_i . M, upsampled x2 to stride 4. Both branches read the encoder
features with two coordinate channels prepended. Three instance branches:

* ``base`` -- IAM: one 3x3 convolution + sigmoid (the paper's instance activation maps).
* ``giam`` -- group IAM (the paper's G-IAM): a grouped 3x3 convolution gives G maps per query; the G pooled
  features of a query are concatenated and fused by a linear layer + ReLU.
* ``soft`` -- group IAM with a spatial softmax in place of sigmoid + normalisation (official ``giam_soft``).

Names follow the official ``BaseIAMDecoder`` / ``GroupIAMDecoder`` / ``GroupIAMSoftDecoder``.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.heads.dense import conv_tower
from pysalient.layers.weight_init import c2_msra_fill, c2_xavier_fill, prior_probability_bias

PRIOR_PROB = 0.01  # focal-loss prior (Lin et al., ICCV'17): initial sigmoid output of class logits and IAMs


def coordinate_features(features: Tensor) -> Tensor:
    """Normalised (x, y) coordinates of every cell, the CoordConv channels the decoder prepends.

    Computed as ``-1 + 2 * i / (n - 1)`` (the official ``compute_coordinates``, not ``linspace``, whose
    rounding differs). A size-1 axis gets -1 where the official formula divides by zero.

    Args:
        features: [B, C, H, W]; only its shape, dtype and device are used.

    Returns:
        [B, 2, H, W]: channel 0 is x (varies along W), channel 1 is y.
    """
    height, width = features.shape[-2], features.shape[-1]
    y_loc = -1.0 + 2.0 * torch.arange(height, device=features.device) / max(height - 1, 1)
    x_loc = -1.0 + 2.0 * torch.arange(width, device=features.device) / max(width - 1, 1)
    y_grid, x_grid = torch.meshgrid(y_loc, x_loc, indexing="ij")
    batch = features.shape[0]
    locations = torch.stack([x_grid, y_grid], dim=0).unsqueeze(0).expand(batch, 2, height, width)
    return locations.to(features.dtype)


class InstanceBranch(nn.Module):
    """IAM instance branch: tower, sigmoid activation maps, normalised pooling, three linear heads.

    Args:
        in_channels: encoder channels + 2 coordinate channels.
        num_queries: N, instances predicted per image.
        num_classes: class logits per query.
        kernel_dim: D, length of the mask kernels.
        num_convs, dim: depth and width of the tower.
        groups: activation maps per query; the grouped subclasses set it, the base branch has 1.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        num_queries: int,
        num_classes: int,
        kernel_dim: int,
        num_convs: int,
        dim: int,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.num_groups = groups
        self.inst_convs = conv_tower(num_convs, in_channels, dim)
        dim = dim if num_convs > 0 else in_channels
        # One grouped convolution: group g sees channels [g*dim/G, (g+1)*dim/G) and gives maps g*N .. g*N+N-1.
        self.iam_conv = nn.Conv2d(dim, num_queries * groups, 3, padding=1, groups=groups)
        expand_dim = dim * groups
        self.cls_score = nn.Linear(expand_dim, num_classes)
        self.mask_kernel = nn.Linear(expand_dim, kernel_dim)
        self.objectness = nn.Linear(expand_dim, 1)  # keeps PyTorch's default init, as official
        bias = prior_probability_bias(PRIOR_PROB)
        for module in (self.iam_conv, self.cls_score):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.constant_(module.bias, bias)
        nn.init.normal_(self.mask_kernel.weight, std=0.01)
        nn.init.zeros_(self.mask_kernel.bias)

    def pool(self, iam: Tensor, features: Tensor) -> Tensor:
        """iam: [B, M, H, W] logits, features: [B, C, H, W] -> z [B, M, C], z_i = sum_p A_i(p) X(p) / sum_p A_i(p)."""
        probabilities = iam.sigmoid().flatten(2)
        pooled = torch.bmm(probabilities, features.flatten(2).transpose(1, 2))
        # Normalising after the product (not the maps before it) is the official order; kept for parity.
        normalizer = probabilities.sum(-1).clamp(min=1e-6)
        return pooled / normalizer[:, :, None]

    def combine(self, pooled: Tensor) -> Tensor:
        """[B, M, C] pooled features -> [B, N, C'] features of each query (identity for one group)."""
        return pooled

    def forward(self, features: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pools one feature vector per query and reads the heads off it.

        Args:
            features: [B, C_in, H, W] encoder features with the coordinate channels.

        Returns:
            class logits [B, N, K], mask kernels [B, N, D], objectness logits [B, N, 1] and the activation map
            logits [B, N*groups, H, W].
        """
        features = self.inst_convs(features)
        iam = self.iam_conv(features)
        instance_features = self.combine(self.pool(iam, features))
        logits = self.cls_score(instance_features)
        kernels = self.mask_kernel(instance_features)
        objectness = self.objectness(instance_features)
        return logits, kernels, objectness, iam


def group_query_features(pooled: Tensor, groups: int) -> Tensor:
    """Concatenates the G pooled features of every query, group-minor (the paper's G-IAM).

    Args:
        pooled: [B, G*N, C]; row ``g*N + q`` is group g of query q (the grouped convolution's order).
        groups: G.

    Returns:
        [B, N, G*C]; query q is ``cat(pooled[g*N + q] for g in 0..G-1)``.
    """
    batch, maps, channels = pooled.shape
    queries = maps // groups
    return pooled.reshape(batch, groups, queries, channels).transpose(1, 2).reshape(batch, queries, groups * channels)


class GroupInstanceBranch(InstanceBranch):
    """Group-IAM instance branch: G maps per query, their features concatenated and fused by fc + ReLU.

    Takes the arguments of :class:`InstanceBranch`, with ``groups`` (G, 4 officially).

    The official code hard-codes 4 in the concatenating reshape; ``groups`` is honoured here (same result
    for the official G = 4).
    """

    def __init__(self, in_channels: int, **kwargs: int) -> None:
        super().__init__(in_channels, **kwargs)
        expand_dim = self.cls_score.in_features
        self.fc = nn.Linear(expand_dim, expand_dim)
        c2_xavier_fill(self.fc)

    def combine(self, pooled: Tensor) -> Tensor:
        """[B, G*N, C] -> [B, N, G*C] fused by fc + ReLU."""
        return F.relu(self.fc(group_query_features(pooled, self.num_groups)))


class GroupInstanceSoftBranch(GroupInstanceBranch):
    """Group IAM whose maps are a spatial softmax (official ``GroupInstanceSoftBranch``).

    ``softmax_bias`` is kept only so official checkpoints load: a constant added to every logit of a softmax
    cancels out, so it changes nothing and receives a zero gradient.
    """

    def __init__(self, in_channels: int, **kwargs: int) -> None:
        super().__init__(in_channels, **kwargs)
        self.softmax_bias = nn.Parameter(torch.ones(1))

    def pool(self, iam: Tensor, features: Tensor) -> Tensor:
        """iam: [B, M, H, W] logits, features: [B, C, H, W] -> softmax-weighted features [B, M, C]."""
        weights = F.softmax(iam.flatten(2) + self.softmax_bias, dim=-1)
        return torch.bmm(weights, features.flatten(2).transpose(1, 2))


class MaskBranch(nn.Module):
    """Mask-feature branch: tower of 3x3 convolutions + ReLU, then a 1x1 projection to the kernel dimension.

    Args:
        in_channels: encoder channels + 2 coordinate channels.
        kernel_dim: D, channels of the mask features.
        num_convs, dim: depth and width of the tower.
    """

    def __init__(self, in_channels: int, *, kernel_dim: int, num_convs: int, dim: int) -> None:
        super().__init__()
        self.mask_convs = conv_tower(num_convs, in_channels, dim)
        self.projection = nn.Conv2d(dim if num_convs > 0 else in_channels, kernel_dim, 1)
        c2_msra_fill(self.projection)

    def forward(self, features: Tensor) -> Tensor:
        """features: [B, C_in, H, W] -> mask features [B, D, H, W]."""
        return self.projection(self.mask_convs(features))


class BaseIAMDecoder(nn.Module):
    """SparseInst decoder with the single-group IAM instance branch.

    Args:
        in_channels: encoder channels (the two coordinate channels are added here).
        num_queries, num_classes, kernel_dim: N, K and D.
        inst_convs, inst_dim, mask_convs, mask_dim: depth and width of the two towers.
        groups: activation maps per query (ignored by this single-group decoder).
        scale_factor: bilinear upsampling of the stride-8 masks (2 gives stride 4).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        num_queries: int = 100,
        num_classes: int = 1,
        kernel_dim: int = 128,
        inst_convs: int = 4,
        inst_dim: int = 256,
        mask_convs: int = 4,
        mask_dim: int = 256,
        groups: int = 4,
        scale_factor: float = 2.0,
    ) -> None:
        super().__init__()
        self.scale_factor = float(scale_factor)
        in_channels = in_channels + 2
        self.inst_branch = self._make_inst_branch(
            in_channels,
            num_queries=num_queries,
            num_classes=num_classes,
            kernel_dim=kernel_dim,
            num_convs=inst_convs,
            dim=inst_dim,
            groups=groups,
        )
        self.mask_branch = MaskBranch(in_channels, kernel_dim=kernel_dim, num_convs=mask_convs, dim=mask_dim)

    def _make_inst_branch(self, in_channels: int, *, groups: int, **kwargs: int) -> InstanceBranch:
        return InstanceBranch(in_channels, **kwargs)

    def forward(self, features: Tensor) -> Dict[str, Tensor]:
        """Predicts N instances from the encoder features.

        Args:
            features: encoder output [B, C, h, w] at stride 8.

        Returns:
            ``pred_logits`` [B, N, K] class logits, ``pred_masks`` [B, N, h*s, w*s] mask logits
            (s = ``scale_factor``), ``pred_scores`` [B, N, 1] objectness logits.
        """
        # Coordinates first, then features: the channel order of the official first tower convolutions.
        features = torch.cat([coordinate_features(features), features], dim=1)
        pred_logits, pred_kernel, pred_scores, _ = self.inst_branch(features)
        mask_features = self.mask_branch(features)
        batch, channels, height, width = mask_features.shape
        num_queries = pred_kernel.shape[1]
        pred_masks = torch.bmm(pred_kernel, mask_features.reshape(batch, channels, height * width))
        pred_masks = pred_masks.reshape(batch, num_queries, height, width)
        pred_masks = F.interpolate(pred_masks, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return {"pred_logits": pred_logits, "pred_masks": pred_masks, "pred_scores": pred_scores}


class GroupIAMDecoder(BaseIAMDecoder):
    """SparseInst decoder with the group-IAM instance branch (the official default, ``giam``)."""

    def _make_inst_branch(self, in_channels: int, *, groups: int, **kwargs: int) -> InstanceBranch:
        return GroupInstanceBranch(in_channels, groups=groups, **kwargs)


class GroupIAMSoftDecoder(BaseIAMDecoder):
    """SparseInst decoder with softmax group activation maps (``soft``)."""

    def _make_inst_branch(self, in_channels: int, *, groups: int, **kwargs: int) -> InstanceBranch:
        return GroupInstanceSoftBranch(in_channels, groups=groups, **kwargs)


DECODERS = {"base": BaseIAMDecoder, "giam": GroupIAMDecoder, "soft": GroupIAMSoftDecoder}
