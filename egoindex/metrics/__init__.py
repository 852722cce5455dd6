"""Pure numpy metrics (retrieval R@K, EgoMCQ, EPIC MIR) that any layer may use."""
