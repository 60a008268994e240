"""The corpus, the tokenizer trained on it, and the token files every training and evaluation reads."""
