"""Export a TriageNet to one ONNX graph and quantize it to int8.

The graph: inputs ``input_ids`` and ``attention_mask`` (int64, [batch, sequence], both axes
dynamic so the runtime pads each batch only to its longest message); outputs ``sentiment``
[batch, 3], ``emotion`` [batch, 4] (softmax probabilities) and ``stress`` [batch] (sigmoid).
"""

from __future__ import annotations

from pathlib import Path

import torch
from minilm import TriageNet

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("sentiment", "emotion", "stress")
OPSET = 17


def export_fp32(net: TriageNet, path: Path) -> Path:
    net = net.eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    dynamic.update({"sentiment": {0: "batch"}, "emotion": {0: "batch"}, "stress": {0: "batch"}})
    with torch.no_grad():
        torch.onnx.export(
            net,
            (ids, mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return path


def quantize_int8(fp32: Path, int8: Path) -> Path:
    """Dynamic int8: weights stored as int8 (MatMul and the embedding Gather), activations
    quantized per batch at run time. Keeps the artifact under 30 MB."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = fp32.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_dynamic(
        str(prepared),
        str(int8),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gather"],
        per_channel=True,
        extra_options={"MatMulConstBOnly": True},
    )
    prepared.unlink()
    return int8
