"""What LESA learns from: the SVD of every matrix type across layers, the predictor of a layer from its neighbours,
and the continuity of the singular vectors."""
