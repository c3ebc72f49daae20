"""``Result``: what every model family returns for one image (masks, boxes, scores, labels, names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch import Tensor

from pysalient.utils.atomic import atomic_write_bytes


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight boxes of binary masks.

    Args:
        masks: bool [N, H, W].

    Returns:
        float32 [N, 4] (x1, y1, x2, y2) with exclusive right/bottom edges (detectron2's BitMasks convention);
        all zeros for an empty mask.
    """
    if masks.shape[0] == 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=masks.device)
    columns = masks.any(dim=1)  # [N, W]
    rows = masks.any(dim=2)  # [N, H]
    boxes = torch.zeros((masks.shape[0], 4), dtype=torch.float32, device=masks.device)
    x_index = torch.arange(masks.shape[2], device=masks.device)
    y_index = torch.arange(masks.shape[1], device=masks.device)
    non_empty = columns.any(dim=1)
    big = masks.shape[1] + masks.shape[2]
    boxes[:, 0] = torch.where(columns, x_index, big).min(dim=1).values.float()
    boxes[:, 1] = torch.where(rows, y_index, big).min(dim=1).values.float()
    boxes[:, 2] = torch.where(columns, x_index, -1).max(dim=1).values.float() + 1
    boxes[:, 3] = torch.where(rows, y_index, -1).max(dim=1).values.float() + 1
    boxes[~non_empty] = 0
    return boxes


CAPTION_FONT = cv2.FONT_HERSHEY_SIMPLEX
CAPTION_SCALE = 0.5
CAPTION_THICKNESS = 1
CAPTION_MARGIN = 4  # pixels between a caption and its box's top line


def _palette(index: int) -> tuple:
    # Evenly spread hues (golden-ratio steps) so neighbouring instances get distinct colours.
    hue = int((index * 0.618033988749895 % 1.0) * 179)
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(channel) for channel in bgr)


def caption_origin(
    box: Tuple[int, int, int, int], text_size: Tuple[int, int], baseline: int, image_size: Tuple[int, int]
) -> Tuple[int, int]:
    """Where ``cv2.putText`` draws a box's caption so that all of it stays inside the image.

    Above the box when there is room, otherwise just inside its top edge; shifted left when it would pass the
    right edge. An image too small for the caption keeps its top-left corner.

    Args:
        box: (x1, y1, x2, y2) in pixels.
        text_size: (width, height) of the caption, as ``cv2.getTextSize`` gives it.
        baseline: pixels the caption extends below its origin (``cv2.getTextSize``'s baseline).
        image_size: (H, W) of the image.

    Returns:
        (x, y): the bottom-left origin of the text.
    """
    x1, y1 = box[0], box[1]
    text_width, text_height = text_size
    height, width = image_size
    x = max(0, min(x1, width - text_width))
    y = y1 - CAPTION_MARGIN
    if y - text_height < 0:  # no room above: inside the box, under its top line
        y = max(y1, 0) + CAPTION_MARGIN + text_height
    y = max(text_height, min(y, height - 1 - baseline))
    return x, y


class ResultArrays(NamedTuple):
    """A :class:`Result` as numpy arrays (what :meth:`Result.numpy` returns).

    Attributes:
        masks: bool [N, H, W].
        boxes: float32 [N, 4] (x1, y1, x2, y2) in pixels.
        scores: float32 [N].
        labels: int64 [N].
        names: class index -> class name.
        orig_img: BGR uint8 [H, W, 3], if known.
        path: where the image came from, if known.
    """

    masks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    names: Dict[int, str]
    orig_img: Optional[np.ndarray]
    path: Optional[str]


@dataclass
class Result:
    """Detections of one image, at the original image size.

    Attributes:
        masks: bool [N, H, W] instance masks.
        boxes: float32 [N, 4] (x1, y1, x2, y2) in pixels; always present (derived from masks when a model
            predicts none).
        scores: float32 [N] confidence, sorted in decreasing order by the predictors.
        labels: int64 [N] class indices into ``names``.
        names: class index -> class name.
        orig_img: the input image as BGR uint8 [H, W, 3] (OpenCV convention), if known.
        path: where the image came from, if it was a file (or a description: ``"clip.mp4 frame 3"``).
        save_dir: the folder ``predict(save=...)`` wrote this image's outputs to, if any.
    """

    masks: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    names: Dict[int, str] = field(default_factory=lambda: {0: "salient"})
    orig_img: Optional[np.ndarray] = None
    path: Optional[str] = None
    save_dir: Optional[str] = None

    def __post_init__(self) -> None:
        count = self.masks.shape[0]
        if self.masks.dim() != 3 or self.masks.dtype != torch.bool:
            raise ValueError(f"masks must be bool [N, H, W], got {self.masks.dtype} {tuple(self.masks.shape)}")
        for name, value, width in (
            ("boxes", self.boxes, 4),
            ("scores", self.scores, None),
            ("labels", self.labels, None),
        ):
            expected = (count, width) if width else (count,)
            if tuple(value.shape) != expected:
                raise ValueError(f"{name} must have shape {expected} to match {count} masks, got {tuple(value.shape)}")

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def __getitem__(self, index: Union[int, slice, Tensor, Sequence[int]]) -> Result:
        """The instances selected by ``index`` (an int, a slice, a bool [N] mask or int indices), as a Result.

        ``result[result.scores > 0.5]`` keeps the confident instances; ``result[:3]`` the three best. An int gives
        a one-instance Result (detectron2 ``Instances`` and supervision ``Detections`` behave the same way).

        Raises:
            IndexError: an int out of range, or a bool mask of the wrong length.
        """
        if isinstance(index, bool):
            raise TypeError("a Result is indexed by ints, slices, bool masks or index lists, not by a bool")
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise IndexError(f"instance {index} out of range for a Result of {len(self)} instances")
            index = slice(index % len(self), index % len(self) + 1)
        elif not isinstance(index, slice):
            index = torch.as_tensor(index, device=self.scores.device)
            if index.dtype == torch.bool and tuple(index.shape) != (len(self),):
                raise IndexError(f"a bool mask must have shape ({len(self)},), got {tuple(index.shape)}")
            if index.dtype != torch.bool:
                index = index.to(torch.int64)
        return Result(
            self.masks[index],
            self.boxes[index],
            self.scores[index],
            self.labels[index],
            self.names,
            self.orig_img,
            self.path,
            self.save_dir,
        )

    @property
    def image_size(self) -> tuple:
        """(H, W) of the image the masks belong to."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def cpu(self) -> Result:
        """A copy with every tensor on the CPU."""
        return Result(
            self.masks.cpu(),
            self.boxes.cpu(),
            self.scores.cpu(),
            self.labels.cpu(),
            self.names,
            self.orig_img,
            self.path,
            self.save_dir,
        )

    def numpy(self) -> ResultArrays:
        """A copy of the detections as numpy arrays, in a :class:`ResultArrays` named tuple.

        ``Result`` itself always holds tensors (its methods rely on them), so unlike ultralytics' ``Results.numpy()``
        this returns another type; its fields have the same names and meanings: ``result.numpy().boxes`` is the
        float32 [N, 4] array of ``result.boxes``. The arrays are copies: changing them leaves the Result unchanged.
        """
        return ResultArrays(
            masks=self.masks.detach().cpu().numpy().copy(),
            boxes=self.boxes.detach().cpu().numpy().copy(),
            scores=self.scores.detach().cpu().numpy().copy(),
            labels=self.labels.detach().cpu().numpy().copy(),
            names=dict(self.names),
            orig_img=self.orig_img,
            path=self.path,
        )

    def summary(self, decimals: int = 5) -> List[Dict[str, Any]]:
        """One plain-Python dict per instance (JSON-serialisable), in the Result's order.

        Each is ``{"name": str, "class": int, "confidence": float, "box": {"x1", "y1", "x2", "y2"}: float pixels,
        "area": int}``, where ``area`` counts the mask's pixels; floats are rounded to ``decimals`` digits.
        """
        result = self.cpu()
        areas = result.masks.flatten(1).sum(dim=1).tolist() if len(result) else []
        columns = zip(result.labels.tolist(), result.scores.tolist(), result.boxes.tolist(), areas)
        entries = []
        for label, score, box, area in columns:
            entries.append(
                {
                    "name": self.names.get(int(label), str(int(label))),
                    "class": int(label),
                    "confidence": round(float(score), decimals),
                    "box": {key: round(float(value), decimals) for key, value in zip(("x1", "y1", "x2", "y2"), box)},
                    "area": int(area),
                }
            )
        return entries

    def plot(
        self,
        image: Optional[np.ndarray] = None,
        alpha: float = 0.5,
        show_boxes: bool = True,
        show_labels: bool = True,
    ) -> np.ndarray:
        """Draws masks, boxes and ``label score`` captions (kept inside the image, see :func:`caption_origin`).

        Args:
            image: BGR uint8 [H, W, 3] to draw on; defaults to ``orig_img`` (or black).
            alpha: mask opacity.
            show_boxes: whether to draw boxes and captions.
            show_labels: whether to draw the captions of the boxes.

        Returns:
            A new BGR uint8 [H, W, 3] image.
        """
        height, width = self.image_size
        base = image if image is not None else self.orig_img
        canvas = np.zeros((height, width, 3), np.uint8) if base is None else np.ascontiguousarray(base).copy()
        if canvas.shape[:2] != (height, width):
            raise ValueError(f"image is {canvas.shape[:2]} but the masks are {(height, width)}")
        result = self.cpu()
        for index in range(len(result)):
            colour = np.array(_palette(index), dtype=np.float32)
            mask = result.masks[index].numpy()
            canvas[mask] = (canvas[mask].astype(np.float32) * (1 - alpha) + colour * alpha).astype(np.uint8)
        if show_boxes:
            for index in range(len(result)):
                colour = _palette(index)
                x1, y1, x2, y2 = (int(round(v)) for v in result.boxes[index].tolist())
                cv2.rectangle(canvas, (x1, y1), (max(x2 - 1, x1), max(y2 - 1, y1)), colour, 2)
                if show_labels:
                    result._draw_caption(canvas, index, (x1, y1, x2, y2), colour)
        return canvas

    def _draw_caption(self, canvas: np.ndarray, index: int, box: Tuple[int, int, int, int], colour: tuple) -> None:
        label = int(self.labels[index])
        caption = f"{self.names.get(label, str(label))} {float(self.scores[index]):.2f}"
        text_size, baseline = cv2.getTextSize(caption, CAPTION_FONT, CAPTION_SCALE, CAPTION_THICKNESS)
        origin = caption_origin(box, text_size, baseline, canvas.shape[:2])
        cv2.putText(canvas, caption, origin, CAPTION_FONT, CAPTION_SCALE, colour, CAPTION_THICKNESS, cv2.LINE_AA)

    def save(self, filename: str, **plot_kwargs: Any) -> str:
        """Writes :meth:`plot` to ``filename`` (format from its extension) atomically; returns the path."""
        path = Path(filename)
        encoded_ok, encoded = cv2.imencode(path.suffix or ".jpg", self.plot(**plot_kwargs))
        if not encoded_ok:
            raise ValueError(f"cannot encode an image with extension {path.suffix!r}")
        atomic_write_bytes(path, encoded.tobytes())
        return str(path)

    def to_coco(self, image_id: int, category_ids: Optional[Dict[int, int]] = None) -> List[Dict[str, Any]]:
        """COCO results-format entries (RLE segmentation, xywh bbox, score, category_id).

        Args:
            image_id: the dataset's id of this image.
            category_ids: label -> dataset category id; defaults to ``label + 1`` (COCO ids start at 1).

        Returns:
            One dict per instance, ready for ``COCO.loadRes``.
        """
        from pycocotools import mask as mask_utils

        result = self.cpu()
        entries = []
        for index in range(len(result)):
            binary = np.asfortranarray(result.masks[index].numpy().astype(np.uint8))
            rle = mask_utils.encode(binary)
            rle["counts"] = rle["counts"].decode("ascii")
            x1, y1, x2, y2 = result.boxes[index].tolist()
            label = int(result.labels[index])
            entries.append(
                {
                    "image_id": int(image_id),
                    "category_id": category_ids[label] if category_ids is not None else label + 1,
                    "segmentation": rle,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(result.scores[index]),
                }
            )
        return entries

    def to_supervision(self) -> Any:
        """The detections as ``supervision.Detections`` (requires ``pip install supervision``)."""
        try:
            import supervision
        except ImportError as error:
            raise ImportError(
                "Result.to_supervision() needs the 'supervision' package: pip install supervision"
            ) from error
        result = self.cpu()
        return supervision.Detections(
            xyxy=result.boxes.numpy().astype(np.float32),
            mask=result.masks.numpy(),
            confidence=result.scores.numpy().astype(np.float32),
            class_id=result.labels.numpy().astype(int),
            data={"class_name": np.array([self.names.get(int(i), str(int(i))) for i in result.labels], dtype=object)},
        )

    def __repr__(self) -> str:
        height, width = self.image_size
        return f"Result({len(self)} instances, image {height}x{width}, path={self.path!r})"
