"""ONNX export of the PyTorch model, its parity check, and ONNX graph helpers the INT8 and TensorRT jobs share."""
