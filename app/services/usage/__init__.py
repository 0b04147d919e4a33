"""Usage accounting: reports over the answers' tokens and cost, and quotas."""
