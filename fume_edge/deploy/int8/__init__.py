"""INT8 quantization of an exported ONNX graph: calibration, QDQ insertion, sensitivity search, accuracy report."""
