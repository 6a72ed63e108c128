"""Evaluation: suites (BFCL, synthetic, user), XGrammar grammars, constrained batched decoding, BFCL-style scoring
and the per-suite evaluation loop."""
