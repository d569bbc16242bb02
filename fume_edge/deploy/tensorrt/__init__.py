"""TensorRT engine build and the engine checks, from an FP32 or INT8 ONNX graph."""
