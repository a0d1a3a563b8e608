"""Attention: the NumPy float64 oracle (`reference`) and the softmax state and merge (`softmax_state`) that
FlashAttention-2, split-KV decoding and Lean Attention share. See README.md for the derivation."""
