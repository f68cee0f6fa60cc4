"""nnselect: Flax CNN that recognises correctly placed atoms from Rietveld difference profiles (issue 4)."""
