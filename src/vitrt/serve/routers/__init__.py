"""Route groups of the server: KServe v2 + health, image classification, metrics and the demo page."""
