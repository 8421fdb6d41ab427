"""A tiny, self-made insightface model pack for offline plumbing tests.

``build_tiny_face_pack`` writes two small ONNX graphs, built from constants and
a seeded random matrix with ``onnx.helper``, into ``<out_dir>/models/tiny_faces/``:

* ``det_tiny.onnx``: an SCRFD-shaped detector (9 outputs: scores, box
  distances and 5-point keypoint offsets at strides 8/16/32, two anchors per
  location). It ignores the pixels and always reports exactly one face with
  score 0.98, centred at 40% of the detector input's width and height, 20% of
  that width wide and 25% of that height tall, with the five ArcFace template
  keypoints inside the box. Every other anchor scores 0.001. The input size is
  dynamic, so any det_size whose sides are multiples of 32 works, e.g.
  (640, 640) or (320, 320). insightface pads the image at the bottom/right,
  so the face lands in the image for aspect ratios up to about 16:9.
* ``rec_tiny.onnx``: an ArcFace-shaped recogniser (input ``N x 3 x 112 x 112``,
  one ``N x 512`` output). It average-pools the aligned crop to 3 x 8 x 8,
  projects it with a fixed, seeded random matrix and adds a fixed offset, so
  even a flat grey crop has a non-zero embedding. The same crop always gives
  the same embedding and different crops give different ones.

The pack is only for plumbing tests: the detections are fake and the
embeddings carry no identity information. Use it to exercise code paths
(loading, detection, alignment, embedding, storage, comparison) in tests and
CI without network access or licensed weights. Real packs such as
``buffalo_l`` are trained models under a non-commercial licence. They are not
downloaded here; the app is pointed at them by folder in its configuration.

Both graphs total about 0.4 MB. This module does not import onnx or insightface
at import time.
"""

from __future__ import annotations

import pathlib

PACK_NAME = "tiny_faces"
DETECTOR_FILE = "det_tiny.onnx"
RECOGNISER_FILE = "rec_tiny.onnx"

EMBEDDING_SIZE = 512
RECOGNISER_INPUT = 112
_STRIDES = (8, 16, 32)
_FACE_STRIDE = 32  # the one stride whose target anchor scores high
_NUM_ANCHORS = 2
_HIGH_SCORE = 0.98
_LOW_SCORE = 0.001
_OPSET = 17
_IR_VERSION = 8  # the IR version that goes with opset 17

# Face box as fractions of the detector input's (width, height).
_BOX = (0.30, 0.275, 0.50, 0.525)  # x1, y1, x2, y2 -> centre (0.4, 0.4)
# The five-point ArcFace template in a 112 x 112 crop (eyes, nose, mouth corners).
_ARCFACE_TEMPLATE = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
_SEED = 20240611


def build_tiny_face_pack(out_dir: pathlib.Path, faces: int = 1) -> pathlib.Path:
    """Write the tiny pack under ``out_dir`` and return the pack folder.

    ``faces=2`` builds a variant (folder ``tiny_faces_2``) whose detector also reports a second face of the same
    size, 30% of the input's width to the right of the first (centre at 70%, 40%), scoring 0.97; it too needs
    contrast where it sits. Group identity tests compose images holding two known faces for it.

    The pack folder is ``out_dir/models/tiny_faces``. That is the
    ``<root>/models/<name>`` layout insightface expects, with ``root=out_dir``
    and ``name="tiny_faces"``. Existing files are overwritten and the output
    is byte-for-byte the same on every call.
    """
    import onnx

    if faces not in (1, 2):
        raise ValueError("the tiny pack reports 1 or 2 faces")
    pack = pathlib.Path(out_dir) / "models" / (PACK_NAME if faces == 1 else f"{PACK_NAME}_{faces}")
    pack.mkdir(parents=True, exist_ok=True)
    for filename, model in ((DETECTOR_FILE, _detector_model(faces)), (RECOGNISER_FILE, _recogniser_model())):
        onnx.checker.check_model(model, full_check=True)
        (pack / filename).write_bytes(model.SerializeToString())
    return pack


# --- graph construction -------------------------------------------------------------------------


class _Graph:
    """Collects nodes and initialisers, naming each one uniquely."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes = []
        self.initializers = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}_{hint}_{self._count}"

    def const(self, value, dtype, hint: str = "c") -> str:
        import numpy as np
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs, hint: str, **attrs) -> str:
        from onnx import helper

        out = self._name(hint)
        # Node names never begin with "Sub"/"Mul": insightface reads those prefixes
        # as an MXNet-style graph that normalises its own input.
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"{self.prefix}/{out}", **attrs))
        return out


def _model(graph: _Graph, name: str, inputs, outputs):
    from onnx import helper

    g = helper.make_graph(graph.nodes, name, inputs, outputs, initializer=graph.initializers)
    model = helper.make_model(
        g,
        producer_name="tiny_faces",
        opset_imports=[helper.make_opsetid("", _OPSET)],
    )
    model.ir_version = _IR_VERSION
    model.doc_string = "Plumbing-test model: constant detections / random-projection embeddings. Not a real model."
    return model


def _detector_model(faces: int = 1):
    import numpy as np
    from onnx import TensorProto, helper

    g = _Graph("det")
    f32, i64 = np.float32, np.int64
    x = "input.1"

    height = g.op("Shape", [x], "H", start=2, end=3)  # int64 [1]
    width = g.op("Shape", [x], "W", start=3, end=4)
    # 0 * mean(pixels): the scores depend on the input tensor, so ORT cannot fold the
    # whole graph away once insightface fixes the input size.
    pixel_mean = g.op("ReduceMean", [x], "pix_mean", keepdims=0)
    pixel_zero = g.op("Mul", [pixel_mean, g.const(0.0, f32)], "pix_zero")
    # "No face" on a flat image: the face only scores high when the region where it would sit (30-50% of
    # the width and height) has some contrast, so a uniform picture yields no detection at all.
    ten = g.const([10], i64, "ten")
    h0 = g.op("Div", [g.op("Mul", [height, g.const([3], i64)], "h3"), ten], "h0")
    h1 = g.op("Div", [g.op("Mul", [height, g.const([5], i64)], "h5"), ten], "h1")
    w0 = g.op("Div", [g.op("Mul", [width, g.const([3], i64)], "w3"), ten], "w0")
    w1 = g.op("Div", [g.op("Mul", [width, g.const([5], i64)], "w5"), ten], "w1")
    starts = g.op("Concat", [h0, w0], "crop_starts", axis=0)
    ends = g.op("Concat", [h1, w1], "crop_ends", axis=0)
    crop = g.op("Slice", [x, starts, ends, g.const([2, 3], i64, "crop_axes")], "crop")
    # Per channel (a flat coloured image is still flat), then the largest.
    spread = g.op("Sub", [g.op("ReduceMax", [crop], "crop_max", axes=[2, 3], keepdims=0),
                          g.op("ReduceMin", [crop], "crop_min", axes=[2, 3], keepdims=0)], "spread")
    contrast = g.op("ReduceMax", [spread], "contrast", keepdims=0)
    has_face = g.op("Cast", [g.op("Greater", [contrast, g.const(0.05, f32)], "textured")], "has_face", to=TensorProto.FLOAT)
    if faces == 2:  # the second face's region: 60-80% of the width, same rows
        w0b = g.op("Div", [g.op("Mul", [width, g.const([6], i64)], "w6"), ten], "w0b")
        w1b = g.op("Div", [g.op("Mul", [width, g.const([8], i64)], "w8"), ten], "w1b")
        crop_b = g.op("Slice", [x, g.op("Concat", [h0, w0b], "crop_b_starts", axis=0), g.op("Concat", [h1, w1b], "crop_b_ends", axis=0),
                                g.const([2, 3], i64, "crop_b_axes")], "crop_b")
        spread_b = g.op("Sub", [g.op("ReduceMax", [crop_b], "crop_b_max", axes=[2, 3], keepdims=0),
                                g.op("ReduceMin", [crop_b], "crop_b_min", axes=[2, 3], keepdims=0)], "spread_b")
        contrast_b = g.op("ReduceMax", [spread_b], "contrast_b", keepdims=0)
        has_face_b = g.op("Cast", [g.op("Greater", [contrast_b, g.const(0.05, f32)], "textured_b")], "has_face_b", to=TensorProto.FLOAT)

    x1, y1, x2, y2 = _BOX
    bw, bh = x2 - x1, y2 - y1
    kps_frac = []
    for tx, ty in _ARCFACE_TEMPLATE:
        kps_frac += [x1 + tx / RECOGNISER_INPUT * bw, y1 + ty / RECOGNISER_INPUT * bh]
    # Box distances (left, top, right, bottom) and keypoint offsets, in stride units,
    # expressed as coef_w * W/s + coef_h * H/s + coef_cx * cx + coef_cy * cy, where
    # (cx, cy) is the target anchor cell, so the decoded face lands at exactly the
    # same fraction of the input whatever the rounding of the cell.
    box_coefs = {
        "w": [-x1, 0.0, x2, 0.0],
        "h": [0.0, -y1, 0.0, y2],
        "cx": [1.0, 0.0, -1.0, 0.0],
        "cy": [0.0, 1.0, 0.0, -1.0],
    }
    kps_coefs = {
        "w": [v if i % 2 == 0 else 0.0 for i, v in enumerate(kps_frac)],
        "h": [v if i % 2 == 1 else 0.0 for i, v in enumerate(kps_frac)],
        "cx": [-1.0 if i % 2 == 0 else 0.0 for i in range(10)],
        "cy": [-1.0 if i % 2 == 1 else 0.0 for i in range(10)],
    }

    def per_anchor(coefs, terms, width_out: int, count, hint):
        acc = None
        for key in ("w", "h", "cx", "cy"):
            term = g.op("Mul", [terms[key], g.const(coefs[key], f32)], f"{hint}_{key}")
            acc = term if acc is None else g.op("Add", [acc, term], f"{hint}_sum")
        shape = g.op("Concat", [count, g.const([width_out], i64)], f"{hint}_shape", axis=0)
        return g.op("Expand", [acc, shape], hint)

    scores_out, boxes_out, kps_out = [], [], []
    for stride in _STRIDES:
        s = g.const([stride], i64, f"s{stride}")
        rows = g.op("Div", [height, s], f"rows{stride}")  # int64 [1], floor for positive
        cols = g.op("Div", [width, s], f"cols{stride}")
        count = g.op("Mul", [g.op("Mul", [rows, cols], f"cells{stride}"), g.const([_NUM_ANCHORS], i64)], f"n{stride}")
        # Target cell at 40% of the grid: (2 * cols) // 5, (2 * rows) // 5.
        two, five = g.const([2], i64), g.const([5], i64)
        cx = g.op("Div", [g.op("Mul", [cols, two], "cx2"), five], f"cx{stride}")
        cy = g.op("Div", [g.op("Mul", [rows, two], "cy2"), five], f"cy{stride}")

        # Scores: 0.001 everywhere; at stride 32, anchor 0 of the target cell scores 0.98.
        n_scalar = g.op("Squeeze", [count, g.const([0], i64)], "n_scalar")
        index = g.op("Range", [g.const(0, i64), n_scalar, g.const(1, i64)], f"idx{stride}")
        if stride == _FACE_STRIDE:
            cell = g.op("Add", [g.op("Mul", [cy, cols], "row_off"), cx], "cell")
            target = g.op("Mul", [cell, g.const([_NUM_ANCHORS], i64)], "target")
        else:
            target = g.const([-1], i64, "no_target")
        hit = g.op("Cast", [g.op("Equal", [index, target], "eq")], "hit", to=TensorProto.FLOAT)
        high = g.op("Mul", [g.op("Mul", [hit, g.const(_HIGH_SCORE - _LOW_SCORE, f32)], "hi_raw"), has_face], "hi")
        if faces == 2 and stride == _FACE_STRIDE:
            # the same box, shifted right by 3/10 of the grid's columns (a second anchor decodes it shifted)
            shift = g.op("Div", [g.op("Mul", [cols, g.const([3], i64)], "cols3"), ten], "shift")
            target_b = g.op("Mul", [g.op("Add", [cell, shift], "cell_b"), g.const([_NUM_ANCHORS], i64)], "target_b")
            hit_b = g.op("Cast", [g.op("Equal", [index, target_b], "eq_b")], "hit_b", to=TensorProto.FLOAT)
            high = g.op("Add", [high, g.op("Mul", [g.op("Mul", [hit_b, g.const(0.97 - _LOW_SCORE, f32)], "hi_b_raw"), has_face_b], "hi_b")], "hi_2")
        score = g.op("Add", [high, g.const(_LOW_SCORE, f32)], "score")
        score = g.op("Add", [score, pixel_zero], "score_px")
        scores_out.append((g.op("Unsqueeze", [score, g.const([1], i64)], f"score{stride}"), stride))

        sf = g.const([float(stride)], f32)
        terms = {
            "w": g.op("Div", [g.op("Cast", [width], "Wf", to=TensorProto.FLOAT), sf], "Ws"),
            "h": g.op("Div", [g.op("Cast", [height], "Hf", to=TensorProto.FLOAT), sf], "Hs"),
            "cx": g.op("Cast", [cx], "cxf", to=TensorProto.FLOAT),
            "cy": g.op("Cast", [cy], "cyf", to=TensorProto.FLOAT),
        }
        boxes_out.append((per_anchor(box_coefs, terms, 4, count, f"bbox{stride}"), stride))
        kps_out.append((per_anchor(kps_coefs, terms, 10, count, f"kps{stride}"), stride))

    # insightface reads outputs by position: 3 score maps, 3 box maps, 3 keypoint maps.
    outputs = []
    for kind, width_out, produced in (("score", 1, scores_out), ("bbox", 4, boxes_out), ("kps", 10, kps_out)):
        for tensor, stride in produced:
            name = f"{kind}_{stride}"
            g.nodes.append(helper.make_node("Identity", [tensor], [name], name=f"det/out_{name}"))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"anchors_{stride}", width_out]))
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, "height", "width"])]
    return _model(g, "tiny_scrfd", inputs, outputs)


def _recogniser_model():
    import numpy as np
    from onnx import TensorProto, helper

    g = _Graph("rec")
    pool = RECOGNISER_INPUT // 8  # 112 -> 8 x 8 per channel
    features = 3 * 8 * 8
    rng = np.random.default_rng(_SEED)
    projection = (rng.standard_normal((features, EMBEDDING_SIZE)) / np.sqrt(features)).astype(np.float32)
    bias = (rng.standard_normal(EMBEDDING_SIZE) / np.sqrt(EMBEDDING_SIZE)).astype(np.float32)  # norm ~1

    x = "input.1"
    pooled = g.op("AveragePool", [x], "pool", kernel_shape=[pool, pool], strides=[pool, pool])
    flat = g.op("Flatten", [pooled], "flat", axis=1)  # N x 192
    projected = g.op("MatMul", [flat, g.const(projection, np.float32, "projection")], "project")
    # A fixed offset keeps the embedding of a flat grey crop (all ~0 after
    # normalisation) away from the zero vector, which could not be normalised.
    embedding = g.op("Add", [projected, g.const(bias, np.float32, "bias")], "embed")
    g.nodes.append(helper.make_node("Identity", [embedding], ["fc1"], name="rec/out_fc1"))

    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 3, RECOGNISER_INPUT, RECOGNISER_INPUT])]
    outputs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", EMBEDDING_SIZE])]
    return _model(g, "tiny_arcface", inputs, outputs)
