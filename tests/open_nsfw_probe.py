"""How tests/data/open-nsfw-probe.png was made: an image the real open_nsfw model flags, with no nudity in it.

open_nsfw ships as an ONNX graph of nine plain operators (Transpose, Conv with batch norm folded in, Relu, MaxPool,
Add, AveragePool, Reshape, MatMul, Softmax). `OnnxResNet` runs that graph in torch so it has gradients; the probe is
a 64x64 colour field (upscaled to 256x256, the size open_nsfw resizes to) moved by gradient ascent on
logit(nsfw) - logit(sfw), under random 224-pixel crops like the model's own centre crop, so it survives the
package's JPEG round trip. It starts from flat grey and comes out an abstract texture: licence-clean (made here,
from the model alone) and it shows the refusal path with the real model's real score, not a threshold override.
It also shows what a classifier is: a score for the whole picture that a made pattern can push to 1.00.

    python -m tests.open_nsfw_probe tests/data/open-nsfw-probe.png   # ~2 minutes on 2 CPU cores
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

MEAN_BGR = (104.0, 117.0, 123.0)


class OnnxResNet:
    """The open_nsfw ONNX graph evaluated with torch ops (logits; the final Softmax is left out)."""

    def __init__(self, path: Path):
        import onnx
        import torch
        from onnx import numpy_helper

        self.model = onnx.load(str(path))
        self.weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in self.model.graph.initializer}

    def __call__(self, x):
        import onnx
        import torch.nn.functional as F

        env = {self.model.graph.input[0].name: x}
        for node in self.model.graph.node:
            a = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
            i = [env.get(k, self.weights.get(k)) for k in node.input]
            op = node.op_type
            if op == "Transpose":
                y = i[0].permute(*a["perm"])
            elif op == "Conv":
                p = a.get("pads", [0, 0, 0, 0])
                y = F.conv2d(F.pad(i[0], (p[1], p[3], p[0], p[2])), i[1], i[2] if len(i) > 2 else None,
                             stride=a.get("strides", [1, 1]), dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
            elif op == "Relu":
                y = F.relu(i[0])
            elif op == "MaxPool":
                p = a.get("pads", [0, 0, 0, 0])
                y = F.max_pool2d(F.pad(i[0], (p[1], p[3], p[0], p[2]), value=-1e9), a["kernel_shape"], a["strides"])
            elif op == "Add":
                y = i[0] + i[1]
            elif op == "AveragePool":
                y = F.avg_pool2d(i[0], a["kernel_shape"], a["strides"])
            elif op == "Reshape":
                y = i[0].reshape(i[0].shape[0], -1) if len(i[1]) == 2 else i[0].reshape(i[0].shape[0], *[int(v) for v in i[1][1:]])
            elif op == "MatMul":
                y = i[0] @ i[1]
            elif op == "Softmax":
                y = i[0]
            else:
                raise ValueError(f"operator {op} is not in open_nsfw's graph")
            env[node.output[0]] = y
        return env[self.model.graph.output[0].name]


def make_probe(steps: int = 120, seed: int = 0):
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from services.safety.output import OpenNsfwChecker

    net = OnnxResNet(OpenNsfwChecker.model_path())
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    field = torch.zeros(1, 3, 64, 64, requires_grad=True)  # sigmoid(0) = flat mid grey
    optimiser = torch.optim.Adam([field], lr=0.05)
    mean = torch.tensor(MEAN_BGR)
    for _ in range(steps):
        big = F.interpolate(torch.sigmoid(field) * 255, size=(256, 256), mode="bilinear", align_corners=False)
        dx, dy = (int(v) for v in rng.integers(0, 33, 2))
        crop = big[:, :, dy:dy + 224, dx:dx + 224].permute(0, 2, 3, 1)
        logits = net(crop.flip(-1) - mean)  # RGB -> BGR, mean subtracted: the package's preprocessing
        loss = logits[0, 0] - logits[0, 1]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        big = F.interpolate(torch.sigmoid(field) * 255, size=(256, 256), mode="bilinear", align_corners=False)
    return Image.fromarray(big[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/open-nsfw-probe.png")
    image = make_probe()
    image.save(out, optimize=True)
    from services.safety.output import OpenNsfwChecker

    print(out, "open_nsfw nsfw =", OpenNsfwChecker(0.5).scores([image])[0])
