"""The graph's tree ensemble on onnx-extended's kernel: the same model, evaluated faster on one thread.

Why: ONNX Runtime's own ``TreeEnsemble*`` kernel is most of a scoring
session's time. onnx-extended (by an ONNX Runtime and skl2onnx maintainer)
ships a drop-in kernel for the same operators, registered as a custom-op
library, that scores the same graphs faster (docs/performance.md). The stored
``model.onnx`` stays standard ONNX: the swap happens in memory when a session
opens, and the equivalence gate runs through the same engine, so what passes
the gate is what scores.

Only for one-thread sessions, the scoring default: the kernel's own
multi-threaded path is switched off by its thresholds, because it crashed the
process under ``OMP_NUM_THREADS=1`` in onnx-extended 0.5.0, and a session
given several threads is better served by ONNX Runtime's kernel, which uses
its pool.
"""

from __future__ import annotations

ONNX_EXTENDED, ONNXRUNTIME = "onnx-extended", "onnxruntime"
TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
DOMAIN = "onnx_extended.ortops.optim.cpu"
#: thresholds (trees, rows) above which the kernel would split a call across threads: never
_SEQUENTIAL = {"parallel_tree": 1 << 30, "parallel_tree_N": 1 << 30, "parallel_N": 1 << 30}


def fast_tree_graph(model: bytes) -> tuple[bytes, str] | None:
    """``model`` with its tree ensembles on onnx-extended's kernel, and the library to register; None if no tree.

    Raises:
        ImportError: onnx-extended is not installed.
    """
    import onnx
    from onnx_extended.ortops.optim.cpu import get_ort_ext_libs

    graph = onnx.load_from_string(model)
    trees = [n for n in graph.graph.node if n.op_type in TREE_OPS and n.domain == "ai.onnx.ml"]
    if not trees:
        return None
    for node in trees:
        attributes = {a.name: a for a in node.attribute}
        modes = ",".join(s.decode() for s in attributes["nodes_modes"].strings)  # the kernel reads one string
        del node.attribute[:]
        node.attribute.extend(a for name, a in attributes.items() if name != "nodes_modes")
        node.attribute.extend(
            [onnx.helper.make_attribute("nodes_modes", modes)]
            + [onnx.helper.make_attribute(k, v) for k, v in _SEQUENTIAL.items()]
        )
        node.domain = DOMAIN
    if not any(o.domain == DOMAIN for o in graph.opset_import):
        graph.opset_import.append(onnx.helper.make_opsetid(DOMAIN, 1))
    return graph.SerializeToString(), get_ort_ext_libs()[0]
