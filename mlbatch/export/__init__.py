"""Exports of a fitted pipeline to portable formats, made at registration (today: ONNX, ``onnx_graph``)."""
