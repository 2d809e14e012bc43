"""Export a trained run as a frozen ONNX graph plus its manifest (needs torch)."""
