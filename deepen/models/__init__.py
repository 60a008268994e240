"""Model families described as data, checkpoints read and written lazily, GGUF import, model folders' checks."""
