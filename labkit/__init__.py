"""labkit: the small package behind *Optimization for Machine Learning*."""
