"""Depth up-scaling: the layer plan, the method contract and registry, the methods, the executor that streams their
layers, reconstruction of the deeper model, the aligned base, and LESA's SVD and predictor."""
