"""Running an exported model without torch: ``ExportedPredictor`` reads an image as training
did, resizes it, runs the ONNX graph in onnxruntime and maps the detections back to the image."""
