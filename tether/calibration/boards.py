"""Calibration targets: checkerboard and ChArUco specs, board images, and corner detection.

A ``BoardSpec`` is plain data so the CLI, the tests (which render the generated image as a MuJoCo texture)
and the calibrators share one definition of where every corner sits on the board. Detection returns
``Detection`` objects: object points in the board frame (OpenCV convention: origin at a corner, z into the
board) paired with sub-pixel image points. ChArUco is preferred for hand-eye because every corner has an id,
so partial views and 180-degree symmetric boards never flip the board frame between views.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tether.errors import TetherError

BOARD_KINDS = ("checkerboard", "charuco")
# Sub-pixel refinement: window half-size in pixels and stopping criteria (iterations, pixel motion).
SUBPIX_WINDOW = (5, 5)
SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)


@dataclass(frozen=True)
class BoardSpec:
    """A planar calibration board.

    ``squares`` is (columns, rows) of squares, as printed; a checkerboard has (columns-1) x (rows-1) inner
    corners. ``square_size``/``marker_size`` are in metres. ``dictionary`` names a cv2.aruco predefined
    dictionary (ChArUco only).
    """

    kind: str = "charuco"
    squares: tuple[int, int] = (7, 5)
    square_size: float = 0.04
    marker_size: float = 0.03
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if self.kind not in BOARD_KINDS:
            raise TetherError(f"unknown board kind {self.kind!r}; expected one of {', '.join(BOARD_KINDS)}")
        if len(self.squares) != 2 or min(self.squares) < 3:
            raise TetherError(f"board squares {self.squares}; expected (columns, rows), each >= 3")
        if not self.square_size > 0:
            raise TetherError(f"board square_size {self.square_size}; expected a positive length in metres")
        if self.kind == "charuco":
            if not 0 < self.marker_size < self.square_size:
                raise TetherError(
                    f"ChArUco marker_size {self.marker_size}; expected 0 < marker_size < square_size "
                    f"({self.square_size})"
                )
            if not hasattr(cv2.aruco, self.dictionary):
                raise TetherError(f"unknown ArUco dictionary {self.dictionary!r}; expected e.g. DICT_5X5_100")

    # ------------------------------------------------------------------ geometry
    @property
    def pattern_size(self) -> tuple[int, int]:
        """Inner corners per row and per column (what findChessboardCorners calls patternSize)."""
        return (self.squares[0] - 1, self.squares[1] - 1)

    @property
    def n_corners(self) -> int:
        return self.pattern_size[0] * self.pattern_size[1]

    @property
    def size_m(self) -> tuple[float, float]:
        return (self.squares[0] * self.square_size, self.squares[1] * self.square_size)

    def corner_points(self) -> np.ndarray:
        """(n_corners, 3) board-frame coordinates of the inner corners, indexed by corner id.

        Both kinds use the same row-major order with corner id 0 one square in from the board origin, so a
        checkerboard and a ChArUco board of the same size have the same object points.
        """
        if self.kind == "charuco":
            return np.asarray(self.cv_board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)
        nx, ny = self.pattern_size
        ii, jj = np.meshgrid(np.arange(nx), np.arange(ny))
        pts = np.stack([(ii.ravel() + 1) * self.square_size, (jj.ravel() + 1) * self.square_size, 0 * ii.ravel()], 1)
        return pts.astype(np.float64)

    def cv_board(self) -> Any:
        if self.kind != "charuco":
            raise TetherError("cv_board() exists only for ChArUco boards")
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(tuple(self.squares), self.square_size, self.marker_size, dictionary)

    def image(self, pixels_per_square: int = 80, margin_squares: float = 0.5) -> np.ndarray:
        """Printable grayscale image of the board with a white quiet zone of ``margin_squares`` squares.

        The board's top-left square corner is at pixel (margin, margin); the board frame's x axis runs right
        and y axis down the image, which is how the tests place the texture in a MuJoCo scene.
        """
        margin = int(round(margin_squares * pixels_per_square))
        w, h = self.squares[0] * pixels_per_square, self.squares[1] * pixels_per_square
        if self.kind == "charuco":
            img = self.cv_board().generateImage((w + 2 * margin, h + 2 * margin), marginSize=margin)
        else:
            cols, rows = np.meshgrid(np.arange(w) // pixels_per_square, np.arange(h) // pixels_per_square)
            board = np.where((cols + rows) % 2 == 0, 0, 255).astype(np.uint8)
            img = np.full((h + 2 * margin, w + 2 * margin), 255, np.uint8)
            img[margin : margin + h, margin : margin + w] = board
        return img

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["squares"] = list(self.squares)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BoardSpec:
        known = {"kind", "squares", "square_size", "marker_size", "dictionary"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TetherError(f"unknown board keys {unknown}; expected some of {sorted(known)}")
        d = dict(d)
        if "squares" in d:
            d["squares"] = tuple(int(v) for v in d["squares"])
        return cls(**d)


@dataclass
class Detection:
    """Corners of one board seen in one image: ids index ``BoardSpec.corner_points()``."""

    name: str
    image_size: tuple[int, int]  # (width, height)
    ids: np.ndarray  # (N,) int
    image_points: np.ndarray  # (N, 2) float, pixels, OpenCV convention (pixel centres at integers)
    object_points: np.ndarray  # (N, 3) float, metres, board frame
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
    if image.ndim != 2:
        raise TetherError(f"image has shape {image.shape}; expected (H, W) or (H, W, 3)")
    return image.astype(np.uint8) if image.dtype != np.uint8 else image


MIN_IMAGE_SIDE = 32  # pixels: a smaller image holds no usable board view


def _enough_spread(points: np.ndarray, min_points: int) -> bool:
    """Reject detections that are too few or (nearly) collinear: they constrain nothing in calibration."""
    if len(points) < min_points:
        return False
    centred = points - points.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    return bool(s[-1] > 1e-3 * s[0])


def detect(board: BoardSpec, image: np.ndarray, name: str = "", min_corners: int = 6) -> Detection | None:
    """Find the board in one image; ``None`` when it is not there (or too little of it is).

    Checkerboards: findChessboardCorners then cornerSubPix (classic detector, explicit sub-pixel step; the
    sector-based detector is the fallback for blurred images). ChArUco: CharucoDetector, whose corners are
    interpolated from the decoded markers and refined to sub-pixel accuracy inside OpenCV.
    """
    gray = _gray(image)
    h, w = gray.shape
    if min(h, w) < MIN_IMAGE_SIDE:  # no board fits (and OpenCV's detectors assert on such images)
        return None
    all_obj = board.corner_points()
    if board.kind == "checkerboard":
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        found, corners = cv2.findChessboardCorners(gray, board.pattern_size, flags=flags)
        if found:
            corners = cv2.cornerSubPix(gray, corners, SUBPIX_WINDOW, (-1, -1), SUBPIX_CRITERIA)
        else:
            found, corners = cv2.findChessboardCornersSB(gray, board.pattern_size, flags=cv2.CALIB_CB_ACCURACY)
        if not found:
            return None
        pts = corners.reshape(-1, 2).astype(np.float64)
        ids = np.arange(board.n_corners)
    else:
        detector = cv2.aruco.CharucoDetector(board.cv_board())
        corners, ids, _, _ = detector.detectBoard(gray)
        if ids is None or len(ids) == 0:
            return None
        pts = corners.reshape(-1, 2).astype(np.float64)
        ids = ids.reshape(-1).astype(int)
    if not _enough_spread(pts, min_corners):
        return None
    return Detection(name=name, image_size=(w, h), ids=ids, image_points=pts, object_points=all_obj[ids])


def load_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise TetherError(f"image {str(path)!r} does not exist; expected a readable image file")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise TetherError(f"image {str(path)!r} could not be decoded; expected PNG/JPEG/BMP/TIFF")
    return img


def detect_all(
    board: BoardSpec, images: Sequence[np.ndarray | str | Path], names: Sequence[str] | None = None
) -> tuple[list[Detection], list[str]]:
    """Detect the board in every image; returns (detections, names of images where it was not found).

    Raises when no image contains the board, or when images differ in size (one camera, one resolution).
    """
    if len(images) == 0:
        raise TetherError("no images given; expected at least one image of the calibration board")
    if names is None:
        names = [str(im) if isinstance(im, (str, Path)) else f"image{i}" for i, im in enumerate(images)]
    detections, missed, sizes = [], [], set()
    for name, im in zip(names, images):
        arr = load_image(im) if isinstance(im, (str, Path)) else np.asarray(im)
        sizes.add((arr.shape[1], arr.shape[0]))
        det = detect(board, arr, name=name)
        (detections.append(det) if det is not None else missed.append(name))
    if len(sizes) > 1:
        raise TetherError(f"images have different sizes {sorted(sizes)}; expected one camera resolution")
    if not detections:
        shown = ", ".join(list(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise TetherError(
            f"no {board.kind} board with {board.squares[0]}x{board.squares[1]} squares found in any of the "
            f"{len(names)} images ({shown}); expected images of that board: check the board kind/size options"
        )
    return detections, missed
