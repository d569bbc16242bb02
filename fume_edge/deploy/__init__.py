"""From a trained checkpoint to what runs on the device, one subpackage per job.

`onnx/` exports and checks the graph, `int8/` quantizes it, `tensorrt/` builds and checks engines; each imports only
the jobs before it (tensorrt -> int8 -> onnx). `upstream_import.py` brings an upstream checkpoint in, `model_info.py`
describes any model file, `reports.py` prints the results of export, import and info.
"""
