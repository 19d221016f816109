"""Decoding with KV caches: LM sampling (`lm`), seq2seq sampling (`seq2seq`), beam search."""
